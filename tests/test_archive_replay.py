"""`persense replay`, `persense record` and the source archive:PATH, on archives of the simulator.

A run recorded losslessly (PNG) and replayed with its own support gives the same counts and masks frame by frame;
replayed with the other kind's support, it gives what the pipeline gives on the simulator's own frames with that
support, and the simulator's truth of that kind. The 2-minute figures: benchmarks/archive_replay.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from benchmarks.soak import free_port
from console_helpers import distractor_point
from streamer.archive.reader import ArchiveReader
from streamer.cli.common import build_pipeline
from streamer.config import Config
from streamer.simulator import ConveyorSimulator

ROOT = Path(__file__).resolve().parents[1]
OBJECTS, DISTRACTORS = 30, 8
SIM = f"sim:?objects={OBJECTS}&distractors={DISTRACTORS}&fps=10"
FRAMES = 12
pytestmark = pytest.mark.slow  # a recorded run and four replays: about a minute on two shared cores


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _totals(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("total: ")]
    return json.loads(line[-1][len("total: "):])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """FRAMES results of `persense run` on the simulator, every frame kept as PNG."""
    tmp = tmp_path_factory.mktemp("recorded")
    archive = tmp / "archive"
    config = tmp / "config.yaml"
    config.write_text(json.dumps({"stream": {"archive": {"enabled": True, "path": str(archive),
                                                         "image_format": "png", "policy": {"every_n": 1}}}}))
    done = _cli("run", "--config", str(config), "--source", SIM, "--max-frames", str(FRAMES), "-q",
                "--publish", f"tcp://127.0.0.1:{free_port()}", "--control", f"tcp://127.0.0.1:{free_port()}",
                "--metrics-port", "0", "--cache-dir", str(tmp / "cache"))
    assert done.returncode == 0, done.stderr[-2000:]
    return archive


def test_replay_with_its_own_support_gives_the_same_counts_and_masks(recorded, tmp_path):
    out = tmp_path / "new.jsonl"
    done = _cli("replay", str(recorded), "--out", str(out))
    totals = _totals(done)
    assert totals["frames"] >= FRAMES and totals["compared"] == totals["frames"] and totals["skipped"] == 0
    assert totals["counts_differ"] == 0 and totals["masks_differ"] == 0
    assert totals["new_total"] == totals["recorded_total"] > 0
    assert totals["truth_frames"] == totals["frames"]  # the simulator's truth was kept with every frame
    per_frame = [ln for ln in done.stdout.splitlines() if " frame " in ln]
    assert len(per_frame) == totals["frames"] and all("masks same" in ln for ln in per_frame)
    lines = out.read_text().splitlines()
    assert len(lines) == totals["frames"] and all(json.loads(ln)["instances"] for ln in lines)


def test_replay_with_the_other_kinds_support_counts_that_kind(recorded, tmp_path):
    simulator = ConveyorSimulator(640, 480, OBJECTS, DISTRACTORS)
    scene = simulator.frame(0)
    x, y = distractor_point(simulator, 0)
    labels, _ = ndimage.label(scene.distractors)
    mask = labels == labels[y, x]
    cv2.imwrite(str(tmp_path / "support.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), mask.astype(np.uint8) * 255)
    done = _cli("replay", str(recorded), "--support", str(tmp_path / "support.png"), "--support-mask",
                str(tmp_path / "mask.png"), "--truth", "distractor")
    totals = _totals(done)
    rows = ArchiveReader(recorded).frames()
    # The truth compared with is the other kind's, as the simulator drew each kept frame.
    assert totals["truth_total"] == sum(simulator.frame(r.frame_index).distractor_count for r in rows)
    # The replay's counts are the pipeline's on the simulator's own frames: the archive kept the frames exactly.
    pipeline = build_pipeline(Config())
    pipeline.set_support(scene.image, mask)
    direct = sum(pipeline.segment(simulator.frame(r.frame_index).image).count for r in rows)
    assert totals["new_total"] == direct
    assert totals["new_total"] < totals["recorded_total"]  # not the product's count any more


def test_record_then_replay_and_run_from_the_archive(tmp_path):
    archive = tmp_path / "rec"
    done = _cli("record", "sim:?objects=20&fps=0", "--out", str(archive), "--max-frames", "5")
    assert done.returncode == 0 and "recorded 5 frame(s)" in done.stdout, done.stderr
    totals = _totals(_cli("replay", str(archive)))
    assert totals["frames"] == 5 and totals["compared"] == 0 and totals["truth_frames"] == 5
    pub = free_port()
    run = _cli("run", "--source", f"archive:{archive}?realtime=0", "--every-frame", "-q",
               "--publish", f"tcp://127.0.0.1:{pub}", "--control", f"tcp://127.0.0.1:{free_port()}",
               "--metrics-port", "0", "--cache-dir", str(tmp_path / "cache"))
    assert run.returncode == 0, run.stderr[-2000:]


def test_replay_of_a_damaged_archive_skips_and_counts(recorded, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(recorded, damaged)
    rows = ArchiveReader(damaged).frames()
    image = damaged / rows[1].image
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    (damaged / rows[3].result).write_text("{not json")
    done = _cli("replay", str(damaged), "--totals-only")
    totals = _totals(done)
    assert totals["skipped"] == 2 and totals["frames"] == len(rows) - 2 and totals["counts_differ"] == 0
    assert "cut short" in done.stderr and "not JSON" in done.stderr
