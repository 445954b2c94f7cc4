"""Crash safety of the archive: `persense run` with the archive on, killed with SIGKILL at 20 random moments.

After every kill: the index opens and passes SQLite's integrity check, every indexed frame's files are there, whole
and readable, and no frame the processor had handed to the archive more than a second before the kill is missing
(the policy keeps every frame; each result read on the bus was handed to the archive before it was published).
The next run starts on the same archive, so each run also shows that a killed archive opens again and grows.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from benchmarks.soak import free_port
from streamer.archive.reader import ArchiveReader
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
KILLS = 20
MISSING_WINDOW_S = 1.0


class _Bus(threading.Thread):
    """Every result's publish time (the header's publish_ts) read from the bus until stopped."""

    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/result")
        self.socket.connect(endpoint)
        self.results: list[dict] = []
        self.halt = threading.Event()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.halt.is_set():
            if poller.poll(100):
                header = json.loads(self.socket.recv_multipart()[1])
                self.results.append({"capture_ts": header["capture_ts"], "publish_ts": header["publish_ts"]})

    def close(self) -> None:
        self.halt.set()
        self.join(5)
        self.socket.close(0)
        self.context.term()


def _check_archive(path: Path) -> list[float]:
    """The archive opens, is consistent and every indexed frame is whole -> the indexed capture times."""
    db = sqlite3.connect(path / "index.sqlite", timeout=5)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    reader = ArchiveReader(path)
    rows = reader.frames()
    for row in rows:
        image = reader.image(row)  # raises DamagedFrame where the file is missing or cut short
        assert image.shape == (480, 640, 3)
        assert reader.result(row)["count"] == row.count
    reader.close()
    return [round(row.capture_ts, 6) for row in rows]


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_whole_archive(tmp_path):
    archive = tmp_path / "archive"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"stream": {"archive": {"enabled": True, "path": str(archive),
                                                         "policy": {"every_n": 1}}}}))
    rng = random.Random(27)
    indexed_before = 0
    report = []
    for kill in range(KILLS):
        pub = free_port()
        args = [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source",
                "sim:?objects=30&fps=10", "--publish", f"tcp://127.0.0.1:{pub}", "--control",
                f"tcp://127.0.0.1:{free_port()}", "--metrics-port", "0", "--cache-dir", str(tmp_path / "cache"),
                "-q", "--status-interval", "0"]
        bus = _Bus(f"tcp://127.0.0.1:{pub}")
        bus.start()
        proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert wait_until(lambda: len(bus.results) >= 1 or proc.poll() is not None, 90, 0.05), "no result"
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(rng.uniform(0.1, 3.0))
            killed_at = time.time()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            bus.close()
            proc.stderr.close()
        indexed = set(_check_archive(archive))
        handed_over = [r for r in bus.results if r["publish_ts"] <= killed_at - MISSING_WINDOW_S]
        missing = [r for r in handed_over if round(r["capture_ts"], 6) not in indexed]
        report.append((kill, len(bus.results), len(indexed) - indexed_before, len(missing)))
        assert not missing, f"kill {kill}: {len(missing)} frame(s) handed over more than 1 s before it are missing"
        indexed_before = len(indexed)
    # The runs' archives add up: every run kept frames and the killed ones did not spoil the next.
    assert all(new > 0 for _, results, new, _ in report if results > 3), report
    # A start sweeps what a kill left unindexed: after the last kill, one more open leaves no temporary file.
    from streamer.archive.config import ArchiveConfig
    from streamer.archive.writer import ArchiveWriter

    ArchiveWriter(ArchiveConfig(enabled=True, path=archive)).stop()
    assert not list((archive / "frames").rglob("*.tmp"))
    print("kill, results on the bus, frames indexed in the run, missing:", report)
