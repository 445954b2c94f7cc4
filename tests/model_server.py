"""A checkpoint server for the `persense models` tests: http.server on 127.0.0.1 in a thread, with HTTP Range,
a transfer that can be cut half-way, and a log of what each request asked for."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes
    content_type: str = "application/octet-stream"
    cut_next: bool = False  # the next GET sends the full Content-Length but only half the body, then closes


@dataclass
class ModelServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path as sent, Range header)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(state: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def do_GET(self):
            state.requests.append((self.path, self.headers.get("Range")))
            # A proxied request carries the absolute URL: serve by the last path part.
            served = state.files.get(self.path.rsplit("/", 1)[-1])
            if served is None:
                self.send_error(404)
                return
            body, start = served.body, 0
            byte_range = self.headers.get("Range", "")
            if byte_range.startswith("bytes=") and byte_range.endswith("-"):
                start = int(byte_range[6:-1])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", served.content_type)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if served.cut_next:
                served.cut_next = False
                self.wfile.write(body[start:start + (len(body) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


def start(state: ModelServer) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="model-server", daemon=True)
    thread.start()
    return server, thread
