"""Issue 24's cases that run `persense` itself (for benchmarks/hostile_cases.py): a FIFO and a device as input,
and SIGHUP while running. Bounded in time; 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import zmq


def _one_run(argv: list[str], code: Path, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=code, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(code)})
    except subprocess.TimeoutExpired:
        return {"exit": None, "message": f"hung: killed after {timeout:.0f} s"}
    lines = done.stderr.strip().splitlines()
    return {"exit": done.returncode, "stderr_lines": len(lines), "message": lines[-1][:200] if lines else "",
            "traceback": "Traceback" in done.stderr, "seconds": round(time.perf_counter() - start, 2)}


def special_files(code: Path, persense: list[str], timeout: float = 30.0) -> list[dict]:
    """A FIFO (no writer) and a device as a query, as --support and as --from: one line and exit 2, the later
    query processed."""
    from streamer.simulator import render_scene, render_support

    work = Path(tempfile.mkdtemp(prefix="persense-fifo-"))
    fifo = work / "fifo.png"
    os.mkfifo(fifo)
    image, mask = render_support(seed=3, object_radius=24)
    cv2.imwrite(str(work / "s.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(work / "m.png"), mask.astype(np.uint8) * 255)
    scene = render_scene(320, 240, n_objects=8, n_distractors=2, seed=5, object_radius=24)
    cv2.imwrite(str(work / "later.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    out = []
    for bad in (fifo, Path("/dev/zero")):
        result = _one_run(persense + ["-q", "segment", "--support", str(work / "s.png"), "--support-mask",
                                      str(work / "m.png"), "--out", str(work / "out"), str(bad),
                                      str(work / "later.png")], code, timeout)
        result["later_query_written"] = (work / "out" / "later.json").exists()
        (work / "out" / "later.json").unlink(missing_ok=True)
        out.append({"case": f"segment {bad.name} then a good query", **result})
    out.append({"case": "run --support FIFO", **_one_run(
        persense + ["run", "--support", str(fifo), "--support-mask", str(work / "m.png"), "--metrics-port", "0",
                    "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--max-frames", "1"],
        code, timeout)})
    out.append({"case": "models fetch --from FIFO", **_one_run(
        persense + ["models", "fetch", "sam-vit-b", "--from", str(fifo), "--cache-dir", str(work / "cache")],
        code, timeout)})
    shutil.rmtree(work, ignore_errors=True)
    return out


def sighup(code: Path, persense: list[str], pub: int, timeout: float = 120.0) -> dict:
    """SIGHUP to a running processor once it published a few results: exit status, last result received."""
    proc = subprocess.Popen(persense + ["run", "--publish", f"tcp://127.0.0.1:{pub}", "--control",
                                        "tcp://127.0.0.1:*", "--metrics-port", "0"],
                            cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/result")
    sub.connect(f"tcp://127.0.0.1:{pub}")
    seqs: list[int] = []
    end = time.monotonic() + timeout
    while len(seqs) < 5 and time.monotonic() < end and proc.poll() is None:
        if sub.poll(200):
            seqs.append(json.loads(sub.recv_multipart()[1])["seq"])
    proc.send_signal(signal.SIGHUP)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    while sub.poll(500):
        seqs.append(json.loads(sub.recv_multipart()[1])["seq"])
    sub.close()
    context.term()
    published = next((line.split("published ")[1].split(" ")[0] for line in err.splitlines()
                      if "published " in line and "result" in line), None)
    return {"exit": proc.returncode, "results_received": len(seqs), "last_seq_received": seqs[-1] if seqs else None,
            "published_said": published, "traceback": "Traceback" in err}
