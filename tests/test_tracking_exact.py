"""Exact cases of the belt tracker and the tally's spec counts: boundaries a plausible slip would move by one
(a track ending one missed frame early; an unknown spec status counted as out of spec).

Hand-placed centres and disks, a few frames each: milliseconds, so tools/mutation.py runs them for every mutant.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamer.sources.base import Frame
from streamer.stream.tally import CameraTally, default_specs, in_spec, resolve_line
from streamer.stream.tally_config import CountLineConfig, SpecRange, TallyConfig
from streamer.tracking.tracker import BeltTracker, TrackerParams
from streamer.types import Instance, SegmentationResult

SIZE = np.array([10.0, 10.0])
A0, B0 = np.array([20.0, 20.0]), np.array([20.0, 80.0])
VX = 5.0  # px per source frame


def _tracker(max_missed=3, velocity=(VX, 0.0)):
    return BeltTracker(TrackerParams(velocity=velocity, max_missed=max_missed))


def _hide_a(tracker, frames, start=1):
    """B seen, A hidden for `frames` processed frames from `start` -> the ended ids of each update."""
    ended = []
    for index in range(start, start + frames):
        _, gone = tracker.update(index, [B0 + [VX * index, 0]], SIZE[:1])
        ended.append(gone)
    return ended


@pytest.mark.parametrize("max_missed", [1, 3, 8])
def test_a_track_hidden_exactly_max_missed_frames_while_others_are_seen_keeps_its_id(max_missed):
    tracker = _tracker(max_missed)
    ids, ended = tracker.update(0, [A0, B0], SIZE)
    assert ids.tolist() == [1, 2] and ended == []
    assert _hide_a(tracker, max_missed) == [[]] * max_missed
    assert tracker.active == 1  # only B matched in the last update
    back = max_missed + 1
    ids, ended = tracker.update(back, [A0 + [VX * back, 0], B0 + [VX * back, 0]], SIZE)
    assert ids.tolist() == [1, 2] and ended == [] and tracker.active == 2


@pytest.mark.parametrize("max_missed", [1, 3, 8])
def test_a_track_hidden_one_frame_more_ends_in_that_frame_and_comes_back_as_a_new_one(max_missed):
    tracker = _tracker(max_missed)
    tracker.update(0, [A0, B0], SIZE)
    ended = _hide_a(tracker, max_missed + 1)
    assert ended == [[]] * max_missed + [[1]]
    back = max_missed + 2
    ids, ended = tracker.update(back, [A0 + [VX * back, 0], B0 + [VX * back, 0]], SIZE)
    assert ids.tolist() == [3, 2] and ended == []


def test_max_missed_zero_ends_a_track_at_its_first_miss():
    tracker = _tracker(0)
    tracker.update(0, [A0, B0], SIZE)
    assert _hide_a(tracker, 1) == [[1]]


def test_frames_without_detections_do_not_age_tracks_and_a_restart_ends_them_all():
    tracker = _tracker(1)
    tracker.update(0, [A0, B0], SIZE)
    for index in range(1, 20):  # nothing seen at all: no evidence the items left
        ids, ended = tracker.update(index, np.zeros((0, 2)), np.zeros(0))
        assert ids.tolist() == [] and ended == []
    ids, ended = tracker.update(20, [A0 + [VX * 20, 0], B0 + [VX * 20, 0]], SIZE)
    assert ids.tolist() == [1, 2] and ended == []
    # The source's frame counter went back (a reconnect): every track ends, the ids go on from where they were.
    ids, ended = tracker.update(20, [A0], SIZE[:1])
    assert ended == [1, 2] and ids.tolist() == [3]
    ids, ended = tracker.update(3, [A0 + [VX * 3, 0]], SIZE[:1])  # earlier than the last: a restart too
    assert ended == [3] and ids.tolist() == [4]


def test_the_gate_is_a_fraction_of_the_larger_diameter():
    for offset, same in ((4.9, True), (5.1, False)):  # gate 0.5 x diameter 10 = 5 px
        tracker = _tracker()
        tracker.update(0, [A0], SIZE[:1])
        ids, _ = tracker.update(1, [A0 + [VX, offset]], SIZE[:1])
        assert (ids.tolist() == [1]) is same, offset
    tracker = _tracker()
    tracker.update(0, [A0], [4.0])
    ids, _ = tracker.update(1, [A0 + [VX, 4.9]], [10.0])  # the new view is larger: its size sets the gate
    assert ids.tolist() == [1]


# -- the tally's spec counts ------------------------------------------------------------------------------------
H, W = 100, 200


def _disk(cx, cy, r=8) -> Instance:
    y, x = np.mgrid[:H, :W]
    full = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    ys, xs = np.nonzero(full)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Instance(0, 1.0, box, full[box[1]:box[3], box[0]:box[2]])


def _run_belt(tally, cy=50, frames=45):
    """Two items ride across the middle line, then leave the frame's view -> the finalised items."""
    image = np.zeros((H, W, 3), np.uint8)
    finished = []
    for i in range(frames):
        instances = [_disk(x, cy) for x in (40 + 5 * i, 15 + 5 * i) if x < 180]
        # Once both left, a still item elsewhere keeps the frames non-empty, so their tracks age and end.
        result = SegmentationResult(W, H, instances or [_disk(30, 50)])
        finished += tally.observe(Frame(image, i, float(i), "cam0"), result)
    return finished


def _tally(**config) -> CameraTally:
    config = {"lines": [{"points": [0.5, 0, 0.5, 1]}], "tracking": {"max_missed": 2}, **config}
    return CameraTally(TallyConfig.model_validate(config), "cam0")


def test_out_of_spec_total_stays_zero_without_a_spec():
    tally = _tally()  # no configured spec and no support to derive one from
    assert tally.specs == {}
    finished = _run_belt(tally)
    assert len(finished) == 2 and all(item.figures is not None and item.in_spec is None for item in finished)
    doc = tally.take_interval()
    assert doc["passed_total"] == 2 and doc["measured_total"] == 2 and doc["out_of_spec_total"] == 0


def test_out_of_spec_total_stays_zero_for_items_never_seen_whole():
    # The items ride along the top edge, cut by it in every view: counted, never measured, never judged.
    tally = _tally(specs={"diameter": {"min": 0.0, "max": 1.0}})  # every measured item would be out of spec
    finished = _run_belt(tally, cy=3)
    assert len(finished) == 2 and all(item.figures is None and item.in_spec is None for item in finished)
    doc = tally.take_interval()
    assert doc["passed_total"] == 2 and doc["measured_total"] == 0 and doc["out_of_spec_total"] == 0
    assert [item["measure"] for item in doc["items"]] == [None, None]
    # The same belt seen whole: both counted out of spec, so the spec is really in force.
    tally = _tally(specs={"diameter": {"min": 0.0, "max": 1.0}})
    assert [item.in_spec for item in _run_belt(tally)] == [False, False]
    assert tally.take_interval()["out_of_spec_total"] == 2


def test_in_spec_bounds_are_inclusive_and_an_unknown_figure_is_no_verdict():
    specs = {"diameter": SpecRange(min=10.0, max=20.0)}
    assert in_spec({"diameter": 10.0}, specs) is True and in_spec({"diameter": 20.0}, specs) is True
    assert in_spec({"diameter": 9.999}, specs) is False and in_spec({"diameter": 20.001}, specs) is False
    assert in_spec({"diameter": None}, specs) is None and in_spec({}, specs) is None
    assert in_spec({"diameter": 15.0}, {}) is None
    assert in_spec({"diameter": 1e9}, {"diameter": SpecRange(min=10.0)}) is True
    assert in_spec({"diameter": -1e9}, {"diameter": SpecRange(max=10.0)}) is True
    two = {"diameter": SpecRange(min=10.0, max=20.0), "area": SpecRange(max=5.0)}
    assert in_spec({"diameter": 15.0, "area": 6.0}, two) is False
    assert in_spec({"diameter": 25.0, "area": None}, two) is False  # a known failure is a failure


def test_default_spec_is_the_support_diameter_within_the_tolerance():
    mask = np.zeros((60, 60), bool)
    y, x = np.mgrid[:60, :60]
    mask[(x - 30) ** 2 + (y - 30) ** 2 <= 100] = True
    diameter = 2 * np.sqrt(mask.sum() / np.pi)
    spec = default_specs(mask, None, 0.2)["diameter"]
    assert spec.min == pytest.approx(0.8 * diameter) and spec.max == pytest.approx(1.2 * diameter)
    assert default_specs(mask, 2.0, 0.1)["diameter"].max == pytest.approx(1.1 * diameter / 2)
    assert default_specs(None, None, 0.2) == {} and default_specs(np.zeros((5, 5), bool), None, 0.2) == {}


def test_a_line_in_pixels_must_lie_within_the_frame():
    assert resolve_line(CountLineConfig(points=(0.5, 0, 0.5, 1)), 200, 100) == (100.0, 0.0, 100.0, 100.0)
    assert resolve_line(CountLineConfig(points=(10, 0, 200, 100), normalized=False), 200, 100) == (10, 0, 200, 100)
    for points in ((10, 0, 201, 100), (10, 0, 20, 101)):
        with pytest.raises(ValueError, match="outside the 200x100 frame"):
            resolve_line(CountLineConfig(points=points, normalized=False), 200, 100)


# -- counting lines (survivors of the tracking module's mutation run) ---------------------------------------------
def test_side_and_along_of_a_line_away_from_the_origin():
    from streamer.tracking.crossing import along, side

    line = (10.0, 20.0, 10.0, 60.0)  # vertical, drawn downwards: forward is +x
    points = [[13.0, 30.0], [7.0, 50.0], [10.0, 20.0], [10.0, 60.0]]
    assert side(points, line).tolist() == [3.0, -3.0, 0.0, 0.0]
    assert along(points, line).tolist() == [0.25, 0.75, 0.0, 1.0]
    slanted = (10.0, 20.0, 40.0, 60.0)  # length 50
    assert side([[50.0, 20.0]], slanted).tolist() == pytest.approx([32.0])  # (40 * 40 - 0 * 30) / 50
    assert along([[50.0, 20.0]], slanted).tolist() == pytest.approx([0.48])  # (40 * 30) / 2500


def test_a_crossing_counts_within_the_segment_ends_and_beyond_the_margin_only():
    from streamer.tracking.crossing import LineCounter

    line = (10.0, 20.0, 10.0, 60.0)
    for y, counted in ((20.0, True), (60.0, True), (19.9, False), (60.1, False)):
        counter = LineCounter(line)
        counter.update([1], [[5.0, y]])
        assert (counter.update([1], [[15.0, y]]) == [(1, "forward")]) is counted, y
    counter = LineCounter(line, margin=0.5)
    counter.update([1, 2], [[9.5, 30.0], [10.5, 30.0]])  # exactly the margin from the line: on no side yet
    assert counter.update([1, 2], [[10.6, 30.0], [9.4, 30.0]]) == []
    assert counter.update([1, 2], [[9.4, 30.0], [10.6, 30.0]]) == [(1, "backward"), (2, "forward")]
    assert counter.counts == {"forward": 1, "backward": 1}
    counter.forget([1])
    assert counter.update([1, 2], [[10.6, 30.0], [9.4, 30.0]]) == []  # 1 starts afresh; 2 was counted once
    assert counter.update([1], [[9.4, 30.0]]) == [(1, "backward")]
