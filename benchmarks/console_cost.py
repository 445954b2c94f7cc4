"""What the console costs the stream: frames/s and processor CPU per frame with and without a live viewer.

A real StreamProcessor on the unpaced simulator (as fast as the pipeline goes), embedded engines, HTTP on
127.0.0.1. Three equal windows: nobody watching, a viewer on the live MJPEG stream, nobody again. The viewer
is a plain socket reading the stream (or, with --browser, headless Chromium showing the console), so its own
CPU is not charged to the processor's figures (getrusage of this process counts the processor's threads; the
socket viewer's reading is negligible, Chromium runs in its own processes).

Run: .venv/bin/python benchmarks/console_cost.py [--seconds 15] [--browser]
"""

from __future__ import annotations

import argparse
import resource
import socket
import tempfile
import threading
import time

from streamer.engine_factory import build_engines
from streamer.config import Config, EnginesConfig
from streamer.stream.config import StreamConfig
from streamer.stream.processor import StreamProcessor
from streamer.stream.support import initial_support


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def window(proc: StreamProcessor, seconds: float, label: str) -> dict:
    frames0, cpu0, renders0, t0 = proc.worker.processed.get("cam0", 0), _cpu_s(), proc.live.renders, time.monotonic()
    time.sleep(seconds)
    frames = proc.worker.processed.get("cam0", 0) - frames0
    elapsed, cpu = time.monotonic() - t0, _cpu_s() - cpu0
    return {"window": label, "watchers": proc.live.watchers, "fps": round(frames / elapsed, 2),
            "cpu_ms_per_frame": round(cpu / max(frames, 1) * 1e3, 1), "renders": proc.live.renders - renders0}


def socket_viewer(port: int, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /api/cameras/cam0/live.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        while not stop.is_set() and conn.recv(1 << 16):
            pass


def browser_viewer(base: str, stop: threading.Event) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(base + "/")
        stop.wait()
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--browser", action="store_true", help="watch with headless Chromium instead of a socket")
    parser.add_argument("--objects", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        stream = StreamConfig.model_validate({
            "sources": [{"uri": f"sim:?objects={args.objects}&fps=0", "camera_id": "cam0"}],
            "publish": {"endpoint": "tcp://127.0.0.1:*"}, "control": {"endpoint": None},
            "metrics": {"port": 0}, "cache_dir": cache,
        })
        proc = StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()),
                               initial_support(None, None, stream.sources))
        proc.start()
        try:
            time.sleep(3.0)  # warm-up
            rows = [window(proc, args.seconds, "no viewer")]
            stop = threading.Event()
            target = ((lambda: browser_viewer(proc.http.base_url, stop)) if args.browser
                      else (lambda: socket_viewer(proc.http.port, stop)))
            viewer = threading.Thread(target=target, daemon=True)
            viewer.start()
            time.sleep(3.0)  # the viewer connects (Chromium starts)
            rows.append(window(proc, args.seconds, "browser viewer" if args.browser else "socket viewer"))
            stop.set()
            viewer.join(30)
            time.sleep(2.0)
            rows.append(window(proc, args.seconds, "no viewer again"))
        finally:
            proc.stop()
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
