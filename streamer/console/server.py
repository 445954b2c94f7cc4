"""The processor's HTTP port: an ASGI app served by uvicorn in a thread of its own.

uvicorn does the HTTP (h11, with the deadlines and connection bound of streamer.console.protocol); this module
only binds the socket (so a port in use is a clear error at start and port 0 gives the chosen port), sets the
limits, and runs and stops the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import uvicorn

from streamer.console.protocol import HttpLimits, guarded_protocol
from streamer.errors import UserError

log = logging.getLogger(__name__)

BACKLOG = 1024  # pending connections the kernel queues (the old server's 5 made a burst of 1,000 take minutes)
MAX_HEAD_BYTES = 16 * 1024  # h11's limit on an incomplete request head (line + headers)


class HttpServer:
    """Serves `app` on host:port from a daemon thread; `port` is the bound port (useful when asked for 0).
    `options` (a ConsoleConfig) gives the connection limits and deadlines (streamer.console.protocol).

    Raises UserError when the address cannot be bound.
    """

    def __init__(self, app, host: str, port: int, options=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
            # Listening from here on: a client that comes before the event loop runs waits in the backlog.
            self._sock.listen(BACKLOG)
        except OSError as exc:
            self._sock.close()
            raise UserError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        self.port = self._sock.getsockname()[1]
        limits = HttpLimits.of(options)
        # No limit_concurrency: uvicorn counts connections there and answers 503 to everything, probes included,
        # once held connections fill it; the protocol bounds connections itself, making room for new ones.
        config = uvicorn.Config(
            app, http=guarded_protocol(limits), lifespan="off", log_config=None, log_level="warning",
            access_log=False, backlog=BACKLOG, timeout_keep_alive=limits.keep_alive_s,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES, timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The metrics URL (kept for the status reply and the run log)."""
        return f"{self.base_url}/metrics"

    def start(self, timeout: float = 5.0) -> None:
        """Start serving; returns once the server accepts requests (or after `timeout`)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 3.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def _serve(self) -> None:
        # The server's own loop in this thread; signals stay with the main thread (uvicorn installs none here).
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except Exception:
            log.exception("the HTTP server stopped")
