"""`persense bench --workers N[,N...] --cameras M`: the stream's worker with one inference thread and with worker
processes on the default engines, alternating; the same results bit for bit and in the same order."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SOURCE = "sim:?objects=20&width=320&height=240&fps=0"


def _bench(*args, timeout: float = 240):
    return subprocess.run([sys.executable, "-m", "streamer", "-q", "bench", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_one_and_two_workers_give_the_same_results_in_the_same_order(tmp_path):
    out = tmp_path / "bench.json"
    proc = _bench("--workers", "1,2", "--cameras", "2", "--frames", "4", "--warmup", "1", "--source", SOURCE,
                  "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert [(r["workers"], r["cameras"], r["frames"]) for r in runs] == [(1, 2, 8), (2, 2, 8)]
    for run in runs:
        assert run["fps"] > 0 and run["cpu_cores"] > 0 and run["failed"] == 0
        assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p95"]
        # Where the latency goes: a frame's segmenting is part of it, the rest (to and from a worker, the wait for
        # earlier frames, tracking, the message) the remainder.
        assert 0 < run["segment_ms_p50"] <= run["latency_ms"]["p50"] and run["beside_segment_ms_p50"] >= 0
    (comparison,) = report["comparisons"]
    assert comparison["workers"] == 2 and comparison["against"] == 1
    assert comparison["results_identical"] is True and comparison["fps_ratio"] > 0
    assert "bit-identical, each camera's in the same order" in proc.stdout and "load average" in proc.stdout


@pytest.mark.parametrize("argv, needle", [
    (("--workers", "0"), "--workers"),
    (("--workers", "1,x"), "--workers"),
    (("--workers", "2", "--cameras", "0"), "--cameras"),
    (("--workers", "2", "--rounds", "0"), "--rounds"),
    (("--workers", "2", "--sweep"), "--sweep"),
])
def test_bad_worker_arguments_are_one_line_and_exit_2(argv, needle):
    proc = _bench(*argv, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert needle in proc.stderr.strip().splitlines()[-1]
