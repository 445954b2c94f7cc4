"""The cases of issue 24 ("hostile input, second round") for benchmarks/hostile_cases.py: each against a real
`persense run` on 127.0.0.1, each bounded in count and time. The processor's console has a token (as in the
probes that found these), so unauthenticated requests get 401."""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import zmq

from tests.peers.deep_images import deep_png, deep_tiff, jpeg_claiming, plain_png, webp_claiming

TOKEN = "benchmark-console-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HELD = (b"POST /api/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Persense-Console: 1\r\nContent-Length: 100000000\r\n"
        b"\r\n")  # then, once answered, one byte of the body


def vm(pid: int, key: str) -> float:
    """/proc/PID/status's `key` (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key}")


def get(port: int, path: str, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, float]:
    """-> (status or 0 when no answer, seconds)."""
    start = time.perf_counter()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, time.perf_counter() - start


def held_open(port: int, connections: int = 300, seconds: float = 15.0, reconnect: bool = False) -> dict:
    """`connections` clients hold connections open (half of them answered posts with a 100 MB body promised, half
    unfinished heads); with `reconnect`, each opens a new one at once whenever the server closes its own (a
    persistent attacker: beyond max_connections that churns as fast as the machine allows). Meanwhile /healthz
    and the console page are asked every 0.25 s."""
    sel = selectors.DefaultSelector()
    opened = closed_by_server = refused = 0

    def open_one(i: int) -> socket.socket | None:
        nonlocal opened, refused
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=2)
            conn.sendall(HELD if i % 2 else b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            refused += 1
            return None
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ, i)
        opened += 1
        return conn

    for i in range(connections):
        open_one(i)
    time.sleep(1.0)  # the posts are answered (401) by now: each sends its one byte of body, then nothing
    for key in list(sel.get_map().values()):
        if key.data % 2:
            try:
                key.fileobj.send(b"x")
            except OSError:
                pass
    probes: dict[str, list] = {"healthz": [], "console": []}
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            probes["healthz"].append(get(port, "/healthz"))
            probes["console"].append(get(port, "/", AUTH))
            stop.wait(0.25)

    asker = threading.Thread(target=ask)
    asker.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.1):
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if data:
                continue  # an answer: read and ignored
            # Closed by the server (with `reconnect`, the attacker comes back at once).
            sel.unregister(key.fileobj)
            key.fileobj.close()
            closed_by_server += 1
            if reconnect:
                conn = open_one(key.data)
                if conn is not None and key.data % 2:
                    try:  # its byte of body right after its head: answered meanwhile or right after
                        conn.send(b"x")
                    except OSError:
                        pass
    stop.set()
    asker.join(30)
    still_open = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    health = [s for s, _ in probes["healthz"]]
    return {"connections": connections, "seconds": seconds, "reconnect": reconnect, "opened": opened,
            "closed_by_server": closed_by_server,
            "connect_failures": refused, "open_at_end": still_open,
            "healthz_statuses": {str(s): health.count(s) for s in sorted(set(health))},
            "healthz_max_s": round(max(t for _, t in probes["healthz"]), 3),
            "console_statuses": {str(s): [c for c, _ in probes["console"]].count(s)
                                 for s in sorted({c for c, _ in probes["console"]})},
            "console_max_s": round(max(t for _, t in probes["console"]), 3)}


def deep_images(context: zmq.Context, control: str, pid: int, request) -> list[dict]:
    """Deep images (16-bit, float) as set_support on the control socket: refused from the header?"""
    cases = [("PNG 7000x7000 16-bit RGBA (real)", lambda: deep_png(7000, 7000, 16, 6, real=True)),
             ("TIFF 7000x7000 float32 grey (real)", lambda: deep_tiff(7000, 7000, 1, 32, real=True)),
             ("TIFF 7000x7000 float32 RGB (header)", lambda: deep_tiff(7000, 7000, 3, 32)),
             ("JPEG 7000x7000 CMYK (header)", lambda: jpeg_claiming(7000, 7000)),
             ("WebP 7000x7000 RGBA (header)", lambda: webp_claiming(7000, 7000))]
    out = []
    for name, make in cases:
        data = make()
        before_peak, before_rss = vm(pid, "VmHWM"), vm(pid, "VmRSS")
        start = time.perf_counter()
        reply = request(context, control, [b'{"cmd": "set_support"}', data, data], 300)
        seconds = time.perf_counter() - start
        out.append({"case": name, "bytes": len(data), "seconds": round(seconds, 3),
                    "reply": (reply or {}).get("error") or reply,
                    "peak_rss_growth_mib": round(vm(pid, "VmHWM") - before_peak, 1),
                    "rss_growth_mib": round(vm(pid, "VmRSS") - before_rss, 1)})
    return out


def _multipart(files: dict[str, bytes]) -> tuple[bytes, dict]:
    boundary = "benchboundary5678"
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                    f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for name, data in files.items())
    return body + f"--{boundary}--\r\n".encode(), {**AUTH, "X-Persense-Console": "1",
                                                   "Content-Type": f"multipart/form-data; boundary={boundary}"}


def parallel_uploads(port: int, pid: int, uploads: int = 3, width: int = 8000, height: int = 6250) -> dict:
    """`uploads` console uploads of a width x height (50 MP) support at the same moment."""
    image = plain_png(width, height)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3:height // 2, width // 3:width // 2] = 255
    body, headers = _multipart({"image": image, "mask": cv2.imencode(".png", mask)[1].tobytes()})
    before_peak, before_rss = vm(pid, "VmHWM"), vm(pid, "VmRSS")
    replies: list = []

    def upload() -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/support/upload", data=body, headers=headers,
                                         method="POST")
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=600) as resp:
                replies.append((resp.status, json.loads(resp.read()).get("support_id"), time.perf_counter() - start))
        except urllib.error.HTTPError as exc:
            replies.append((exc.code, json.loads(exc.read()).get("error"), time.perf_counter() - start))
        except OSError as exc:
            replies.append((0, str(exc), time.perf_counter() - start))

    threads = [threading.Thread(target=upload) for _ in range(uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    return {"uploads": uploads, "megapixels": width * height / 1e6, "body_bytes": len(body),
            "replies": [[s, str(r)[:100], round(t, 2)] for s, r, t in replies],
            "peak_rss_growth_mib": round(vm(pid, "VmHWM") - before_peak, 1),
            "rss_growth_after_mib": round(vm(pid, "VmRSS") - before_rss, 1)}


def _results_rate(context: zmq.Context, endpoint: str, seconds: float) -> float:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/result")
    sub.connect(endpoint)
    time.sleep(0.5)  # joined
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        if sub.poll(100):
            sub.recv_multipart()
            count += 1
    sub.close()
    return count / seconds


def _watch(port: int, count: int) -> tuple[selectors.BaseSelector, threading.Event, threading.Thread, dict]:
    """`count` live viewers that read their streams on a thread -> (selector, stop, thread, figures)."""
    sel = selectors.DefaultSelector()
    figures = {"statuses": {}, "bytes": 0}
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn.sendall(b"GET /api/cameras/cam0/live.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                     + TOKEN.encode() + b"\r\n\r\n")
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ, {"head": b""})
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                try:
                    data = key.fileobj.recv(1 << 16)
                except OSError:
                    data = b""
                state = key.data
                if state["head"] is not None:
                    state["head"] += data
                    if b"\r\n" in state["head"] or not data:
                        code = state["head"].split(b" ")[1].decode() if b" " in state["head"] else "none"
                        figures["statuses"][code] = figures["statuses"].get(code, 0) + 1
                        state["head"] = None
                figures["bytes"] += len(data)
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()

    reader = threading.Thread(target=read)
    reader.start()
    return sel, stop, reader, figures


def _unwatch(sel: selectors.BaseSelector, stop: threading.Event, reader: threading.Thread) -> None:
    stop.set()
    reader.join(30)
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()


def viewers(context: zmq.Context, publish: str, port: int, pid: int, count: int = 100, rounds: int = 2,
            seconds: float = 10.0) -> dict:
    """Results per second with no viewer and with `count` live viewers reading their streams, in alternating
    phases of one run (the machine's other load then weighs on both alike); the resident memory before (after
    one viewer warmed the live view up: its first render, the thread pool) and after they all left."""
    warm = _watch(port, 1)
    time.sleep(3)
    _unwatch(*warm[:3])
    time.sleep(2)
    rss_before = vm(pid, "VmRSS")
    alone = watched = 0.0
    statuses: dict[str, int] = {}
    received = 0
    for _ in range(rounds):
        alone += _results_rate(context, publish, seconds)
        sel, stop, reader, figures = _watch(port, count)
        watched += _results_rate(context, publish, seconds)
        _unwatch(sel, stop, reader)
        for code, n in figures["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
        received += figures["bytes"]
    time.sleep(3)  # the server notices they left
    return {"viewers": count, "rounds": rounds, "seconds_each": seconds, "viewer_statuses": statuses,
            "bytes_to_viewers": received, "results_per_s_alone": round(alone / rounds, 2),
            "results_per_s_watched": round(watched / rounds, 2), "ratio": round(watched / alone, 3) if alone else None,
            "rss_before_mib": round(rss_before, 1), "rss_after_left_mib": round(vm(pid, "VmRSS"), 1)}
