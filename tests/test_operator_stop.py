"""Stopping `persense run` while browsers watch the live view: the live streams end first (each viewer sees its
stream end), the run exits 0, and the log has no ERROR line and no traceback (issue 25)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
VIEWERS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Viewer(threading.Thread):
    """Reads one live stream until it ends; `frames` counts the JPEG parts seen, `ended` how it ended."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.frames, self.ended = port, 0, None

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.request("GET", "/api/cameras/cam0/live.mjpg")
            response = conn.getresponse()
            while True:
                chunk = response.read1(65536)
                if not chunk:
                    self.ended = "end of stream"
                    return
                self.frames += chunk.count(b"Content-Type: image/jpeg")
        except Exception as exc:  # a reset instead of a clean end is what this test looks for
            self.ended = f"{type(exc).__name__}: {exc}"


def test_stop_with_three_live_viewers_is_clean(tmp_path):
    port = _free_port()
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "run", "--source", "sim:?objects=20&fps=15",
             "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--metrics-port", str(port),
             "--cache-dir", str(tmp_path / "cache"), "--status-interval", "0"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
    viewers = []
    try:
        assert wait_until(lambda: "console: open" in log_path.read_text() or proc.poll() is not None, 90, 0.1), \
            log_path.read_text()[-2000:]
        viewers = [Viewer(port) for _ in range(VIEWERS)]
        for viewer in viewers:
            viewer.start()
        assert wait_until(lambda: all(v.frames >= 2 for v in viewers), 60, 0.05), \
            f"viewers saw {[v.frames for v in viewers]} frames\n{log_path.read_text()[-2000:]}"
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    for viewer in viewers:
        viewer.join(10)
    text = log_path.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "CancelledError" not in text, text[-3000:]
    assert " ERROR " not in text, text[-3000:]
    assert [v.ended for v in viewers] == ["end of stream"] * VIEWERS
