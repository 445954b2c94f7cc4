"""The terminal of issue 25: `persense run` prints a status line every N seconds (-q silences it), `persense
subscribe` says where it waits and prints support_id, and the simulator's truth follows the product in force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from streamer.cli import main
from streamer.sources.sim import SimulatorSource
from streamer.stream.notes import DISTRACTOR, PRODUCT, CollapseReasons, NotingSink, TruthInForce, kind_at

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamer", "run", "--source", "sim:?objects=20&fps=10", "--max-frames", "12",
         "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--metrics-port", "0",
         "--cache-dir", str(tmp_path / "cache"), *extra],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=180)


def test_run_prints_a_status_line_every_interval_and_q_silences_it(tmp_path):
    done = _run(tmp_path, "--status-interval", "0.3")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "persense.status: camera cam0:" in line]
    assert len(lines) >= 2, done.stderr[-2000:]
    last = lines[-1]
    for part in ("count ", "(truth ", " frames/s", "latency ", "match quality ", "source streaming", "published"):
        assert part in last, last
    quiet = _run(tmp_path, "--status-interval", "0.3", "-q")
    assert quiet.returncode == 0 and "persense.status" not in quiet.stderr, quiet.stderr[-2000:]


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_bad_status_interval_is_one_line(capsys, value):
    assert main(["run", "--status-interval", value, "--max-frames", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--status-interval must be 0 (never) or more seconds" in err[0]


def test_subscribe_says_where_it_waits(capsys):
    assert main(["subscribe", "--endpoint", "tcp://127.0.0.1:1", "--timeout", "0.1"]) == 0
    assert "waiting on tcp://127.0.0.1:1" in capsys.readouterr().err


def test_subscribe_prints_the_support_id_and_the_reason(capsys):
    from streamer.sources.base import Frame
    from streamer.stream.messages import PartOptions, result_message
    from streamer.types import SegmentationResult

    result = SegmentationResult(4, 4, [], reason="nothing_found: no object like the support was found")
    message = result_message(Frame(np.zeros((4, 4, 3), np.uint8), 3, time.time(), "cam0", truth_count=5), result, 0,
                             "abc123", PartOptions())
    context = zmq.Context.instance()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def publish() -> None:
        for _ in range(600):  # at most 30 s: until the subscriber (which joins late) has had one
            if stop.wait(0.05):
                return
            pub.send_multipart(message)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        code = main(["subscribe", "--endpoint", f"tcp://127.0.0.1:{port}", "--max-messages", "1", "--timeout", "20"])
    finally:
        stop.set()
        thread.join(5)
        pub.close()
    out = capsys.readouterr().out
    assert code == 0
    assert "cam0 seq=0 frame=3 count=0 truth=5 support=abc123 latency=" in out and "reason=nothing_found" in out


class _Keep:
    def __init__(self):
        self.frames = []

    def submit(self, frame, result, support_id, wait=False):
        self.frames.append(frame)
        return True


def test_the_truth_follows_the_product_in_force():
    from streamer.types import SegmentationResult

    source = SimulatorSource("cam0", objects=20, distractors=6, fps=0)
    source.open()
    frame = source.read(1.0)
    scene = frame.truth_scene
    product = np.asarray(scene.labels == 1)
    other = np.asarray(scene.distractor_labels == 1)
    belt = np.zeros_like(product)
    belt[~(scene.labels > 0) & ~scene.distractors] = True
    belt[1:] = False  # a strip of the first row's belt pixels
    assert (kind_at(scene, product), kind_at(scene, other), kind_at(scene, belt)) == (PRODUCT, DISTRACTOR, None)

    truth = TruthInForce()
    truth.note("own", PRODUCT)
    truth.note("picked", DISTRACTOR)
    keep = _Keep()
    sink = NotingSink(keep, truth, CollapseReasons(0.4))
    for support_id in ("own", "picked", "uploaded"):
        sink.submit(frame, SegmentationResult(640, 480, []), support_id)
    assert [f.truth_count for f in keep.frames] == [scene.count, scene.distractor_count, None]
    assert scene.count != scene.distractor_count


def test_subscribe_output_after_a_pick_on_the_bus(tmp_path):
    """The bus's result header carries the truth of the kind picked (result_message reads the adjusted frame)."""
    from streamer.stream.messages import PartOptions, result_message
    from streamer.types import SegmentationResult

    source = SimulatorSource("cam0", objects=20, distractors=6, fps=0)
    source.open()
    frame = source.read(1.0)
    truth = TruthInForce()
    truth.note("picked", DISTRACTOR)
    header = json.loads(result_message(truth.adjust(frame, "picked"), SegmentationResult(640, 480, []), 0, "picked",
                                       PartOptions(masks=False))[1])
    assert header["truth_count"] == frame.truth_scene.distractor_count


def test_subscribe_says_once_when_nothing_comes(capsys, monkeypatch):
    monkeypatch.setattr("streamer.cli.subscribe.NOTHING_YET_S", 0.2)
    assert main(["subscribe", "--endpoint", "tcp://127.0.0.1:1", "--timeout", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("nothing from tcp://127.0.0.1:1 for 0.2 s: is 'persense run' running") == 1, err
    assert "no result for 1 s; stopping" in err


def test_the_status_lines_sum_up_the_warnings_of_each_interval(caplog):
    import logging

    from streamer.cli.run_status import StatusLines
    from waiting import wait_until

    class NoCameras:
        cameras: list = []

    lines = StatusLines(NoCameras(), 0.1)
    with caplog.at_level(logging.INFO):
        lines.start()
        try:
            logging.getLogger("streamer.somewhere").warning("camera cam0: reconnecting")
            logging.getLogger("streamer.somewhere").warning("camera cam0: stalled")
            assert wait_until(lambda: any("warning(s) since the last status line" in r.getMessage()
                                          for r in caplog.records), 10)
        finally:
            lines.stop()
    summary = [r.getMessage() for r in caplog.records if "since the last status line" in r.getMessage()]
    assert summary[0] == "2 warning(s) since the last status line; the last: camera cam0: stalled"
    assert lines.warnings not in logging.getLogger().handlers
