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
    ignore_range: bool = False  # answer every GET with 200 and the whole file, as servers without Range support do
    resume_at: int | None = None  # a lying 206: its Content-Range starts here, whatever the request asked for
    length_extra: int = 0  # a lying Content-Length: this many bytes more than the body sent
    length_header: str | None = None  # sent as Content-Length instead of the size ("": none; the body ends at close)


@dataclass
class ModelServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path as sent, Range header)
    user_agents: list[str | None] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(state: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def do_GET(self):
            state.requests.append((self.path, self.headers.get("Range")))
            state.user_agents.append(self.headers.get("User-Agent"))
            # A proxied request carries the absolute URL: serve by the last path part.
            served = state.files.get(self.path.rsplit("/", 1)[-1])
            if served is None:
                self.send_error(404)
                return
            body, start = served.body, 0
            byte_range = self.headers.get("Range", "")
            if byte_range.startswith("bytes=") and byte_range.endswith("-") and not served.ignore_range:
                start = int(byte_range[6:-1])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                claimed = start if served.resume_at is None else served.resume_at
                self.send_header("Content-Range", f"bytes {claimed}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", served.content_type)
            if served.length_header is None:
                self.send_header("Content-Length", str(len(body) - start + served.length_extra))
            elif served.length_header:
                self.send_header("Content-Length", served.length_header)
            self.end_headers()
            if served.cut_next:
                served.cut_next = False
                self.wfile.write(body[start:start + (len(body) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])
            if served.length_extra or served.length_header is not None:
                self.close_connection = True

    return Handler


def start(state: ModelServer) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    # A short poll: shutdown() waits for it, once per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="model-server", daemon=True)
    thread.start()
    return server, thread
