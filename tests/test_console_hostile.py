"""The HTTP port against hostile clients (issue 24): security headers, clients that leave mid-body, held-open
connections, parallel uploads, live viewers. 127.0.0.1 only; every loop bounded in count and time."""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
from prometheus_client import CollectorRegistry

from console_helpers import http
from waiting import wait_until
from streamer.config import Config
from streamer.console import server as http_server
from streamer.console.app import build_app
from streamer.console.headers import CSP
from streamer.console.live import LiveView
from streamer.sources.base import Frame
from streamer.stream.support_history import SupportHistory
from streamer.types import SegmentationResult


class _Backend:
    """A console backend with one camera and one frame; support changes are counted, not applied."""

    cameras = ["belt"]
    max_image_pixels = 50_000_000

    def __init__(self):
        self.live = LiveView(self.cameras)
        self.supports = SupportHistory()
        self.live.offer(Frame(np.zeros((48, 64, 3), np.uint8), 7, time.time(), "belt"),
                        SegmentationResult(64, 48, []), "s0")
        self.applied = 0

    def replace_support(self, image, mask, undoing=False, camera=None):
        self.applied += 1
        return type("S", (), {"support_id": f"s{self.applied}"})()

    def supports_of(self, camera):
        return self.supports


@contextmanager
def serving(backend=None, console: dict | None = None, token: str | None = None):
    options = Config.model_validate({"stream": {"console": console or {}}}).stream.console
    app = build_app(CollectorRegistry(), lambda: (True, {}), lambda: (True, {}), console=backend or _Backend(),
                    options=options, token=token)
    server = http_server.HttpServer(app, "127.0.0.1", 0, options=options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_html_cannot_be_framed_and_nothing_is_sniffed():
    with serving() as server:
        status, headers, _ = http(server.base_url + "/")
        headers = {k.lower(): v for k, v in headers.items()}
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert headers["x-frame-options"] == "DENY" and headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src" not in CSP  # default-src 'self' covers scripts
        for path in ("/healthz", "/metrics", "/api/nope", "/static/console.js"):
            status, headers, _ = http(server.base_url + path)
            headers = {k.lower(): v for k, v in headers.items()}
            assert headers["x-content-type-options"] == "nosniff", path
            assert "x-frame-options" not in headers, path  # only pages are framed


def test_a_client_that_leaves_mid_body_is_one_quiet_line(caplog):
    caplog.set_level(logging.DEBUG)
    with serving() as server:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
                conn.sendall(b"POST /api/pick HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Persense-Console: 1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"freeze")
                time.sleep(0.2)
        time.sleep(0.5)
        assert http(server.base_url + "/healthz")[0] == 200
    records = [r for r in caplog.records if r.name.startswith(("streamer", "uvicorn"))]
    assert not [r for r in records if r.levelno >= logging.WARNING], [r.getMessage() for r in records]
    assert not any(r.exc_info for r in records)
    left = [r for r in records if "left" in r.getMessage()]
    assert len(left) == 1 and left[0].levelno == logging.INFO  # rate-limited: one line for the three


def test_parallel_uploads_are_decoded_one_at_a_time(monkeypatch):
    import cv2

    import streamer.console.picking_routes as picking
    from console_helpers import multipart

    decoding, most = [0], [0]
    real = picking.support_from_bytes

    def counted(*args, **kwargs):
        decoding[0] += 1
        most[0] = max(most[0], decoding[0])
        try:
            time.sleep(0.3)  # a large image's decode: long enough for the others to arrive meanwhile
            return real(*args, **kwargs)
        finally:
            decoding[0] -= 1

    monkeypatch.setattr(picking, "support_from_bytes", counted)
    image = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))[1].tobytes()
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 255
    body, headers = multipart({"image": image, "mask": cv2.imencode(".png", mask)[1].tobytes()})
    backend = _Backend()
    with serving(backend) as server:
        replies: list = []
        threads = [threading.Thread(target=lambda: replies.append(
            http(server.base_url + "/api/support/upload", body, headers=headers, method="POST")[0]))
            for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert replies == [200, 200, 200] and backend.applied == 3
    assert most[0] == 1  # never two decodes at once: they waited for their turn, not refused


# -- held-open connections (item 1) --------------------------------------------------------------------------

TOKEN = "a-long-enough-console-token"
_HELD = (b"POST /api/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Persense-Console: 1\r\nContent-Length: 100000000\r\n"
         b"\r\nx")


def _closed_within(conn: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """-> (what the server sent, whether it closed the connection within `seconds`)."""
    conn.settimeout(0.2)
    got, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


def test_an_answer_before_the_body_ends_the_connection():
    with serving(token=TOKEN) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(_HELD)
            got, closed = _closed_within(conn, 5)
        assert got.startswith(b"HTTP/1.1 401") and closed  # answered, then closed (it stayed open before)


def test_a_request_must_arrive_within_its_deadline():
    with serving(console={"request_timeout_s": 1.0, "head_timeout_s": 0.5}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"POST /api/pick HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Persense-Console: 1\r\n"
                         b"Content-Length: 1000\r\n\r\n")
            start = time.monotonic()
            closed = False
            for _ in range(20):  # a byte every 0.2 s: a trickle that used to keep the connection for ever
                try:
                    conn.sendall(b" ")
                except OSError:
                    closed = True
                    break
                got, closed = _closed_within(conn, 0.2)
                if closed:
                    break
            assert closed and time.monotonic() - start < 3.5
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head never finished
            assert _closed_within(conn, 3)[1]


def test_held_open_connections_give_way_and_probes_and_the_console_stay_answerable():
    held: list[socket.socket] = []
    with serving(console={"max_connections": 16}, token=TOKEN) as server:
        try:
            for i in range(60):  # far beyond the limit: held-open answered posts and heads never finished
                conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                conn.sendall(_HELD if i % 2 else b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                held.append(conn)
                if i % 10 == 9:
                    assert http(server.base_url + "/healthz", timeout=5)[0] == 200
            for _ in range(5):
                assert http(server.base_url + "/healthz", timeout=5)[0] == 200
                assert http(server.base_url + "/readyz", timeout=5)[0] == 200
                start = time.monotonic()
                status, _, _ = http(server.base_url + "/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
                assert status == 200 and time.monotonic() - start < 1.0
        finally:
            for conn in held:
                conn.close()


# -- live viewers (item 5) -----------------------------------------------------------------------------------

def _open_stream(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET /api/cameras/belt/live.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return conn


def _first_frame(conn: socket.socket) -> bytes:
    seen = b""
    deadline = time.monotonic() + 10
    while b"\xff\xd9" not in seen and time.monotonic() < deadline:  # the end of the first JPEG
        chunk = conn.recv(65536)
        if not chunk:
            break
        seen += chunk
    return seen


def test_live_viewers_are_capped_and_share_one_render():
    backend = _Backend()
    backend.live.max_viewers = 3  # as the processor sets it from stream.console.max_viewers
    with serving(backend) as server:
        viewers = [_open_stream(server.port) for _ in range(3)]
        try:
            for conn in viewers:
                assert b"multipart/x-mixed-replace" in _first_frame(conn)
            assert backend.live.watchers == 3 and backend.live.renders == 1  # one result: one render for all
            status, _, data = http(server.base_url + "/api/cameras/belt/live.mjpg", timeout=5)
            assert status == 503 and b"max_viewers" in data
            viewers.pop().close()
            for _ in range(50):  # bounded: until the server noticed the viewer left
                if backend.live.watchers == 2:
                    break
                time.sleep(0.1)
            late = _open_stream(server.port)
            viewers.append(late)
            assert b"\xff\xd8" in _first_frame(late)  # a place was free again
        finally:
            for conn in viewers:
                conn.close()
        wait_until(lambda: backend.live.watchers == 0, 5.0)
        assert backend.live.watchers == 0 and backend.live.cached("belt") is None  # nothing kept for nobody


def test_viewers_arriving_at_once_get_the_cap_and_no_more():
    backend = _Backend()
    backend.live.max_viewers = 3
    with serving(backend) as server:
        conns = [_open_stream(server.port) for _ in range(10)]  # sent before any is answered
        try:
            heads = [_first_frame(conn)[:12] for conn in conns]
            assert sum(h.startswith(b"HTTP/1.1 200") for h in heads) == 3
            assert sum(h.startswith(b"HTTP/1.1 503") for h in heads) == 7
        finally:
            for conn in conns:
                conn.close()
        wait_until(lambda: backend.live.watchers == 0, 5.0)
        assert backend.live.watchers == 0
