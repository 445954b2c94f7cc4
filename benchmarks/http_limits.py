"""The HTTP port under two abuse cases of issue 11, against 127.0.0.1 only, bounded in count and time.

1. A burst of quick connections: N clients connect at once (T threads), each GETs /healthz and reads the answer.
2. Idle half-requests: M connections each send half a request head and then nothing. Measured: threads in
   this process, whether a normal request is still answered (and how fast), and when the server has closed
   every half-request (uvicorn + streamer.console.server's head deadline).

Run: .venv/bin/python benchmarks/http_limits.py [--connections 1000] [--threads 100] [--idle 200]
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from streamer.console import server as http_server
from streamer.console.app import build_app
from streamer.console.protocol import HttpLimits

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def one_request(port: int, timeout: float = 30.0) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(REQUEST)
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    if data.split(b" ", 2)[1:2] != [b"200"]:
        raise RuntimeError(f"unexpected answer {data[:40]!r}")
    return time.perf_counter() - start


def burst(port: int, connections: int, threads: int) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one_request, port) for _ in range(connections)]
        times, errors = [], 0
        for future in futures:
            try:
                times.append(future.result())
            except (OSError, RuntimeError):
                errors += 1
    times.sort()
    return {"connections": connections, "threads": threads, "total_s": round(time.perf_counter() - start, 2),
            "errors": errors, "p50_ms": round(times[len(times) // 2] * 1e3, 1) if times else None,
            "max_ms": round(times[-1] * 1e3, 1) if times else None}


def idle_half_requests(port: int, count: int, limit_s: float) -> dict:
    threads_before = threading.active_count()
    conns = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=limit_s)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
        conns.append(conn)
    time.sleep(0.5)
    threads_held = threading.active_count() - threads_before
    served_ms = round(one_request(port, timeout=10) * 1e3, 1)
    start = time.perf_counter()
    closed = 0
    for conn in conns:
        conn.settimeout(max(limit_s - (time.perf_counter() - start), 0.01))
        try:
            if conn.recv(1) == b"":
                closed += 1
        except OSError:
            pass
        conn.close()
    return {"half_requests": count, "extra_threads_while_held": threads_held,
            "normal_request_meanwhile_ms": served_ms, "closed_by_server": closed,
            "all_closed_after_s": round(time.perf_counter() - start + 0.5, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--idle", type=int, default=200)
    args = parser.parse_args()
    server = http_server.HttpServer(build_app(lambda: [], lambda: (True, {}), lambda: (True, {})), "127.0.0.1", 0)
    server.start()
    try:
        limits = HttpLimits()
        print("settings:", {"backlog": http_server.BACKLOG, "keep_alive_s": limits.keep_alive_s,
                            "head_timeout_s": limits.head_timeout_s, "request_timeout_s": limits.request_timeout_s,
                            "max_connections": limits.max_connections, "max_head_bytes": http_server.MAX_HEAD_BYTES})
        print("burst:", burst(server.port, args.connections, args.threads))
        print("idle:", idle_half_requests(server.port, args.idle, limits.head_timeout_s + 10))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
