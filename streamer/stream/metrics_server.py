"""One HTTP port serving /metrics (Prometheus text format), /healthz and /readyz (JSON)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST

from streamer.errors import UserError

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, dict]]


class MetricsServer:
    """Serves in a daemon thread; `port` is the bound port (useful when asked for port 0).

    Args:
        exposition: returns the Prometheus text for /metrics.
        health: /healthz, (alive, details): the process's threads are running.
        ready: /readyz, (ready, details): the support is set and a camera is streaming.
    """

    def __init__(self, host: str, port: int, exposition: Callable[[], bytes], health: Probe, ready: Probe):
        handler = _handler_class(exposition, health, ready)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise UserError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler_class(exposition: Callable[[], bytes], health: Probe, ready: Probe):
    class Handler(BaseHTTPRequestHandler):
        server_version = "persense"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._send(200, exposition(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, details = (health if path == "/healthz" else ready)()
                    body = json.dumps({"ok": ok, **details}).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b'{"ok": false, "error": "not found: try /metrics, /healthz, /readyz"}',
                               "application/json")
            except Exception:  # a probe's bug must not take the server down
                log.exception("metrics server: %s failed", path)
                self._send(500, b'{"ok": false, "error": "internal error"}', "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("metrics http: " + fmt, *args)

    return Handler
