"""Spikes (issue 25): over the default simulator, frames that count under half the truth are rare, and every one
carries a `reason`, as every result counting 0 or far under the recent median does.

PERSENSE_SPIKE_FRAMES sets how many frames (default 300; the issue's 1,000 for the figure in the note). The number
of frames under half the truth is printed.
"""

from __future__ import annotations

import os

from streamer.cli.common import build_pipeline
from streamer.config import Config
from streamer.sources.sim import SimulatorSource
from streamer.stream.notes import (FAR_BELOW_MEDIAN, NOT_PRESENT, NOTHING_FOUND, CollapseReasons, NotingSink,
                                   TruthInForce, PRODUCT)
from streamer.types import SegmentationResult

FRAMES = int(os.environ.get("PERSENSE_SPIKE_FRAMES", "300"))
MAX_UNDER_HALF = 0.01  # of the frames; the issue saw 3 in 1,308 (0.23%), all without a reason


class _Keep:
    def __init__(self):
        self.seen = []

    def submit(self, frame, result, support_id, wait=False):
        self.seen.append((frame.index, result.count, frame.truth_count, result.reason))
        return True


def test_frames_under_half_the_truth_are_rare_and_each_says_why():
    config = Config()
    pipeline = build_pipeline(config)
    source = SimulatorSource("cam0", fps=0, frames=FRAMES)  # the default simulator: 60 objects, 8 distractors
    source.open()
    support = pipeline.set_support(*source.support())
    truth = TruthInForce()
    truth.note(support.support_id, PRODUCT)
    keep = _Keep()
    sink = NotingSink(keep, truth, CollapseReasons(config.pipeline.presence_threshold))
    for _ in range(FRAMES):
        frame = source.read(1.0)
        sink.submit(frame, pipeline.segment(frame.image), support.support_id)
    under = [row for row in keep.seen if row[1] < row[2] / 2]
    print(f"{len(under)} of {FRAMES} frames of the default simulator counted under half the truth: {under}")
    assert all(reason for *_, reason in under), under
    assert len(under) <= MAX_UNDER_HALF * FRAMES, under


def test_every_collapse_has_a_documented_reason():
    reasons = CollapseReasons(0.4)
    full = [SegmentationResult(8, 8, [object()] * 60, match_quality=0.8) for _ in range(10)]
    assert all(reasons.reason("cam0", r) == "" for r in full)
    few = SegmentationResult(8, 8, [object()] * 2, match_quality=0.8)
    absent = SegmentationResult(8, 8, [], match_quality=-0.134)
    nothing = SegmentationResult(8, 8, [], match_quality=0.0)
    gated = SegmentationResult(8, 8, [], reason="grounding: no box for 'bolt'")
    got = [reasons.reason("cam0", r) for r in (few, absent, nothing, gated)]
    assert [g.split(":")[0] for g in got] == [FAR_BELOW_MEDIAN, NOT_PRESENT, NOTHING_FOUND, "grounding"]
    assert "2 found, the recent median is 60" in got[0] and "-0.13 under the presence level 0.40" in got[1]
    documented = open(os.path.join(os.path.dirname(__file__), "..", "docs", "stream-protocol.md")).read()
    for code in (FAR_BELOW_MEDIAN, NOT_PRESENT, NOTHING_FOUND):
        assert f"`{code}`" in documented
