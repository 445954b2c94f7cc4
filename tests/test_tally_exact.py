"""Exact cases of one camera's tally (streamer.stream.tally): the interval message field by field, the histogram's
edges and bins at their boundaries, the per-item samples, the homography's scale, and what the tally hands the
reject stations. Hand-placed disks on a 200 x 100 frame, a few dozen frames each: milliseconds, so
tools/mutation.py runs them for every mutant of the tally.
"""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest

import streamer.stream.tally as tally_module
from streamer.sources.base import Frame
from streamer.stream.tally import CameraTally, ItemFigures, TrackSamples, _median, resolve_line
from streamer.stream.tally_config import CountLineConfig, TallyConfig
from streamer.tracking.measure import COLUMN, FIELDS
from streamer.tracking.tracker import TrackerParams
from streamer.types import Instance, SegmentationResult

H, W = 100, 200
VX = 5.0  # px per source frame


def _disk(cx, cy, r, score=1.0) -> Instance:
    y, x = np.mgrid[:H, :W]
    full = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    ys, xs = np.nonzero(full)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Instance(0, score, box, full[box[1]:box[3], box[0]:box[2]])


def _diameter(r) -> float:
    """The equivalent diameter in pixels of _disk(..., r): 2 sqrt(area / pi)."""
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return 2.0 * math.sqrt(np.count_nonzero(x * x + y * y <= r * r) / math.pi)


def _ride(tally, items, frames=45, vx=VX, truth=None, size=(W, H)):
    """Items (x at frame 0, y, radius) ride at `vx` px per frame while wholly inside the frame; once all left, a
    still item elsewhere keeps the frames non-empty, so their tracks age and end -> the finalised items."""
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    finished = []
    for i in range(frames):
        instances = [_disk(x0 + vx * i, y, r) for x0, y, r in items if r + 2 <= x0 + vx * i < width - r - 2]
        result = SegmentationResult(width, height, instances or [_disk(30, 50, 8)])
        finished += tally.observe(Frame(image, i, float(i), "cam0", truth=truth), result)
    return finished


def _config(**config) -> TallyConfig:
    base = {"lines": [{"points": [0.5, 0, 0.5, 1]}], "tracking": {"velocity": [VX, 0.0], "max_missed": 2}}
    return TallyConfig.model_validate({**base, **config})


# -- small parts ----------------------------------------------------------------------------------------------
def test_median_is_the_middle_row_or_the_mean_of_the_two_middle_ones():
    rows = [[4.0, 40.0], [1.0, 10.0], [3.0, 30.0], [2.0, 20.0], [9.0, 0.0]]
    expected = {1: [4.0, 40.0], 2: [2.5, 25.0], 3: [3.0, 30.0], 4: [2.5, 25.0], 5: [3.0, 20.0]}
    for n, middle in expected.items():
        assert _median(np.array(rows[:n])).tolist() == middle, n


def test_track_samples_keep_every_view_then_every_second_then_every_fourth():
    samples = TrackSamples(4)
    assert samples.median([0]) is None  # nothing kept yet: no median (and no error)
    for view in range(33):
        if samples.take():
            samples.add(np.array([float(view)]))
    assert samples.views == 33  # every view is counted (a reject station waits for a number of them)
    assert [row[0] for row in samples.rows] == [0.0, 16.0, 32.0] and samples.stride == 16
    partial = TrackSamples(4)
    for view in range(7):
        if partial.take():
            partial.add(np.array([float(view)]))
    assert [row[0] for row in partial.rows] == [0.0, 2.0, 4.0, 6.0] and partial.stride == 2


def test_item_figures_keep_four_shape_views_per_detail_view_and_leave_details_unknown_without_one():
    item = ItemFigures(2)
    assert (item.shapes.capacity, item.details.capacity) == (8, 2)
    assert item.figures() is None
    row = np.arange(len(FIELDS), dtype=np.float64)
    item.shapes.add(row)
    figures = item.figures()
    assert figures.dtype == np.float64
    shape_columns = [COLUMN[n] for n in ("area", "diameter", "major_axis", "minor_axis", "orientation")]
    assert figures[shape_columns].tolist() == row[shape_columns].tolist()
    assert np.isnan(figures[[COLUMN[n] for n in ("solidity", "red", "green", "blue")]]).all()
    item.details.add(row + 100)
    assert item.figures()[COLUMN["solidity"]] == row[COLUMN["solidity"]] + 100


def test_a_normalised_line_scales_each_coordinate_by_its_own_side():
    line = CountLineConfig(points=(0.25, 0.5, 0.75, 1.0))
    assert resolve_line(line, 200, 100) == (50.0, 50.0, 150.0, 100.0)


# -- the interval message -------------------------------------------------------------------------------------
def test_the_interval_message_field_by_field():
    # Three items cross the middle line forward: small (below the histogram), middle (its first bin) and large
    # (above it); the spec admits the middle one only.
    d5, d8, d11 = (round(_diameter(r) / 2.0, 3) for r in (5, 8, 11))  # mm at 2 px per mm
    tally = CameraTally(_config(calibration={"px_per_mm": 2.0}, specs={"diameter": {"min": d8, "max": d8 + 1}},
                                histogram_range=[d8 - 0.5, d8 + 0.5], histogram_bins=3), "cam0")
    assert tally.take_interval()["items"] == [] and tally.reject_events == [] and tally.zone_steps == []
    finished = _ride(tally, [(60, 20, 5), (60, 50, 8), (60, 80, 11)])
    # Finalised in the order their tracks end: the middle and large ones leave the frame's view first.
    assert [(i.track_id, i.figures["diameter"], i.in_spec) for i in finished] == [
        (2, d8, True), (3, d11, False), (1, d5, False)]
    doc = tally.take_interval()
    edges = [round(d8 - 0.5 + k / 3, 3) for k in range(4)]
    assert doc == {
        "passed": 3, "passed_total": 3, "by_direction": {"forward": 3, "backward": 0}, "measured_total": 3,
        "out_of_spec_total": 2, "tracks": 1, "units": "mm",
        "specs": {"diameter": {"min": d8, "max": d8 + 1}},
        "size_histogram": {"measure": "diameter", "edges": edges, "below": 1, "counts": [0, 1, 0], "above": 1},
        "size_histogram_total": {"below": 1, "counts": [0, 1, 0], "above": 1},
        "items": [item.to_dict() for item in finished], "items_left_out": 0,
    }
    assert doc["items"][0] == {"track_id": 2, "line": "line0", "direction": "forward", "in_spec": True,
                               "measure": finished[0].figures}
    # The message is JSON: counts are integers there, not 1.0.
    assert json.dumps(doc["size_histogram_total"]) == '{"below": 1, "counts": [0, 1, 0], "above": 1}'
    again = tally.take_interval()
    assert (again["passed"], again["passed_total"], again["size_histogram"]["counts"], again["items"]) == (
        0, 3, [0, 0, 0], [])
    assert again["size_histogram_total"] == doc["size_histogram_total"]
    finished = _ride(tally, [(60, 50, 8), (40, 50, 8)], frames=40)
    doc = tally.take_interval()
    assert (doc["passed"], doc["passed_total"], doc["by_direction"]) == (2, 5, {"forward": 5, "backward": 0})
    assert doc["size_histogram"]["counts"] == [0, 2, 0] and doc["size_histogram_total"]["counts"] == [0, 3, 0]


def test_a_diameter_on_an_edge_goes_to_the_bin_above_it():
    d8 = round(_diameter(8), 3)
    tally = CameraTally(_config(histogram_range=[d8, 2 * d8], histogram_bins=1), "cam0")
    _ride(tally, [(60, 30, 8), (60, 70, 8)])
    doc = tally.take_interval()
    assert doc["size_histogram"] == {"measure": "diameter", "edges": [d8, round(2 * d8, 3)], "below": 0,
                                     "counts": [2], "above": 0}
    tally = CameraTally(_config(histogram_range=[d8 / 2, d8], histogram_bins=1), "cam0")
    _ride(tally, [(60, 50, 8)])
    assert tally.take_interval()["size_histogram"]["above"] == 1  # the upper edge: above


def test_the_default_histogram_range_follows_the_support_and_a_configured_one_overrides_it():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True  # 400 px: 2 sqrt(400 / pi) px across, at 2 px per mm
    d = 2.0 * math.sqrt(400 / math.pi) / 2.0
    tally = CameraTally(_config(calibration={"px_per_mm": 2.0}, histogram_bins=4), "cam0", mask)
    assert tally.take_interval()["size_histogram"]["edges"] == [round(d * (0.5 + k / 4), 3) for k in range(5)]
    assert tally.specs["diameter"].min == pytest.approx(0.8 * d) and tally.specs["diameter"].max == pytest.approx(
        1.2 * d)
    configured = CameraTally(_config(calibration={"px_per_mm": 2.0}, histogram_range=[1, 4], histogram_bins=3),
                             "cam0", mask)
    assert configured.take_interval()["size_histogram"]["edges"] == [1.0, 2.0, 3.0, 4.0]
    bare = CameraTally(_config(), "cam0")  # no support, no range: 0 to 200 in 12 bins
    assert bare.take_interval()["size_histogram"]["edges"] == [round(200 * k / 12, 3) for k in range(13)]
    bare.set_support(mask)  # a support arriving later brings its range (pixels here: no calibration)
    assert bare.take_interval()["size_histogram"]["edges"][0] == round(d, 3)  # 0.5 x the diameter of 2d px


def test_an_interval_lists_at_most_its_limit_of_items_and_counts_the_rest(monkeypatch):
    monkeypatch.setattr(tally_module, "_MAX_ITEMS_PER_INTERVAL", 1)
    tally = CameraTally(_config(), "cam0")
    finished = _ride(tally, [(60, 20, 5), (60, 50, 5), (60, 80, 5)])
    doc = tally.take_interval()
    assert len(finished) == 3 and doc["passed"] == 3
    assert [item["track_id"] for item in doc["items"]] == [1] and doc["items_left_out"] == 2
    assert tally.take_interval()["items_left_out"] == 0


def test_lines_count_their_own_direction_and_take_their_names():
    # The belt runs backward (right to left); an unnamed line gets its index among this camera's lines.
    config = _config(lines=[{"points": [0.3, 0, 0.3, 1], "camera": "cam1", "name": "other"},
                            {"points": [0.5, 0, 0.5, 1], "count": "forward"},
                            {"points": [0.25, 0, 0.25, 1], "count": "backward", "camera": "cam0"},
                            {"points": [0.75, 0, 0.75, 1], "name": "exit"}],
                     tracking={"velocity": [-VX, 0.0], "max_missed": 2})
    tally = CameraTally(config, "cam0")
    assert [line.name for line in tally.lines] == ["line0", "line1", "exit"]
    finished = _ride(tally, [(170, 50, 8)], vx=-VX)
    doc = tally.take_interval()
    # Three lines crossed backward: each is reported, two count (line0 counts forward only).
    assert doc["by_direction"] == {"forward": 0, "backward": 3} and doc["passed"] == 2
    # One item, finalised with the last line that counted it.
    assert [(i.line, i.direction) for i in finished] == [("line1", "backward")]


def test_a_pixel_line_outside_the_frame_is_named_once_and_counts_nothing(caplog):
    config = _config(lines=[{"points": [10, 0, 10, 100], "normalized": False, "name": "in"},
                            {"points": [500, 0, 500, 100], "normalized": False, "name": "far"}])
    tally = CameraTally(config, "cam0")
    with caplog.at_level(logging.ERROR, logger="streamer.stream.tally_zones"):
        _ride(tally, [(60, 50, 8)], frames=3)
    assert [r.getMessage() for r in caplog.records] == [
        "camera cam0: counting line far: line (500.0, 0.0, 500.0, 100.0) lies outside the 200x100 frame; "
        "it counts nothing"]
    assert [line.name for line in tally.lines] == ["in"]


def test_the_tracker_gets_the_configured_velocity_gate_and_patience():
    tally = CameraTally(_config(tracking={"velocity": [3.0, -1.0], "gate": 0.25, "max_missed": 4}), "cam0")
    assert tally.tracker.params == TrackerParams(velocity=(3.0, -1.0), gate=0.25, max_missed=4)


def test_zones_and_reject_stations_of_other_cameras_are_left_out():
    config = _config(zones=[{"points": [[0, 0], [0.2, 0], [0.2, 0.2]], "camera": "cam1", "name": "theirs"},
                            {"points": [[0, 0], [0.2, 0], [0.2, 0.2]], "camera": "cam0", "name": "mine"}],
                     rejects=[{"name": "jet1", "camera": "cam1", "line": [0.9, 0, 0.9, 1]},
                              {"name": "jet0", "camera": "cam0", "line": [0.9, 0, 0.9, 1]}])
    tally = CameraTally(config, "cam0")
    assert [zone.name for zone in tally.zones.zones] == ["mine"]
    assert [station.name for station in tally.rejects.stations] == ["jet0"]
    assert tally.rejects.camera == "cam0" and tally.rejects.plane is tally.plane


def test_a_camera_uses_its_own_calibration():
    config = _config(calibration={"px_per_mm": 2.0}, camera_calibration={"cam0": {"px_per_mm": 4.0}})
    assert CameraTally(config, "cam0").scale == 4.0 and CameraTally(config, "cam1").scale == 2.0


# -- per item -------------------------------------------------------------------------------------------------
def _measured_diameter(radius_at) -> float:
    """One item ridden across the frame, its radius at view i `radius_at(i)` -> its finalised diameter (px)."""
    tally = CameraTally(_config(tracking={"velocity": [VX, 0.0], "max_missed": 2, "gate": 1.0}), "cam0")
    image = np.zeros((H, W, 3), np.uint8)
    finished = []
    for i in range(36):
        x = 20 + VX * i
        instances = [_disk(x, 50, radius_at(i))] if x < 180 else [_disk(30, 20, 4)]
        finished += tally.observe(Frame(image, i, float(i), "cam0"), SegmentationResult(W, H, instances))
    assert len(finished) == 1
    # The samples of ended tracks are dropped (bounded memory): only the live still item's remain.
    assert list(tally._samples) == [2]
    return finished[0].figures["diameter"]


def test_an_item_is_measured_over_its_whole_track_not_its_last_view():
    # Seen whole (r 9) in its first 20 views, in part (r 6) in its last 12: the whole one's.
    assert _measured_diameter(lambda i: 9 if i < 20 else 6) == round(_diameter(9), 3)


def test_an_item_seen_whole_in_a_third_of_its_views_is_measured_by_those():
    """Parts of an item (r 6) in two views of three, the whole (r 9) in every third: its diameter is the whole's,
    not the median's (a part's); one larger view alone (a leaked mask) is not the item."""
    assert _measured_diameter(lambda i: 9 if i % 3 == 0 else 6) == round(_diameter(9), 3)
    assert _measured_diameter(lambda i: 9 if i == 10 else 6) == round(_diameter(6), 3)


@pytest.mark.parametrize("min_view_score, radius", [(None, 9), (0.0, 6)])
def test_masks_the_decoder_scores_low_are_not_measured(min_view_score, radius):
    """A score under stream.tally.min_view_score (default 0.5): the view is no whole view (the flow simulator's
    masks under 0.5 were parts of their items, every one). The whole item (r 9) scored 0.9 in every seventh view, a
    part of it (r 6) scored 0.49 in the others: measured by the whole views; with no minimum, the parts win."""
    extra = {} if min_view_score is None else {"min_view_score": min_view_score}
    config = _config(tracking={"velocity": [VX, 0.0], "max_missed": 2, "gate": 1.0}, **extra)
    assert config.min_view_score == (0.5 if min_view_score is None else min_view_score)
    tally = CameraTally(config, "cam0")
    image = np.zeros((H, W, 3), np.uint8)
    finished = []
    for i in range(36):
        x = 20 + VX * i
        part = _disk(x, 50, 9, 0.9) if i % 7 == 0 else _disk(x, 50, 6, 0.49)
        finished += tally.observe(Frame(image, i, float(i), "cam0"),
                                  SegmentationResult(W, H, [part] if x < 180 else [_disk(30, 20, 4)]))
    assert len(finished) == 1 and finished[0].figures["diameter"] == round(_diameter(radius), 3)


class _Truth:
    """A stand-in for the flow simulator's truth: items at `centres` with `diameters_px`; each line's count is
    its x coordinate (so the first line's is told from the others')."""

    def __init__(self, centres, diameters_px):
        self.centres, self.diameters_px = np.asarray(centres, float).reshape(-1, 2), np.asarray(diameters_px, float)

    def passed(self, line):
        return int(line[0])


def test_truth_comes_from_the_first_line_and_the_nearest_truth_item():
    truth = _Truth([[100.0, 50.0], [100.0, 10.0]], [12.3456, 99.0])
    config = _config(lines=[{"points": [0.5, 0, 0.5, 1]}, {"points": [0.75, 0, 0.75, 1]}],
                     calibration={"px_per_mm": 2.0})
    tally = CameraTally(config, "cam0")
    finished = _ride(tally, [(60, 50, 8)], truth=truth)
    assert tally.truth_passed_total == 100 and tally.header()["truth_passed_total"] == 100
    assert tally.take_interval()["truth_passed_total"] == 100
    assert finished[0].truth_diameter == 12.3456 / 2.0 and finished[0].to_dict()["truth_diameter"] == 6.173
    one = _Truth([[0.0, 0.0]], [7.0])  # one truth item, in pixels without a calibration
    plain = CameraTally(_config(), "cam0")
    assert _ride(plain, [(60, 50, 8)], truth=one)[0].truth_diameter == 7.0
    none = CameraTally(_config(), "cam0")
    assert _ride(none, [(60, 50, 8)], truth=_Truth(np.zeros((0, 2)), []))[0].truth_diameter is None
    bare = CameraTally(_config(), "cam0")
    item = _ride(bare, [(60, 50, 8)])[0]
    assert item.truth_diameter is None and "truth_diameter" not in item.to_dict()
    assert "truth_passed_total" not in bare.header() and "truth_passed_total" not in bare.take_interval()
    assert bare.header() == {"tracks": 1, "passed_total": 1}


# -- a homography ---------------------------------------------------------------------------------------------
# Frame pixels -> belt millimetres in perspective: its area scale at (x, y) is det(H) / w^3, w = 1 + 0.002 x + 0.003 y.
HOMOGRAPHY = [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.002, 0.003, 1.0]]


def _px_per_mm(x, y) -> float:
    w = 1.0 + 0.002 * x + 0.003 * y
    return math.sqrt(w ** 3 / 0.25)


def test_a_homography_measures_the_support_at_the_frame_centre():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    config = _config(calibration={"homography": HOMOGRAPHY, "image_size": [W, H]}, spec_tolerance=0.1)
    tally = CameraTally(config, "cam0", mask)
    assert tally.scale == pytest.approx(_px_per_mm(W / 2, H / 2), rel=1e-5)
    d = 2.0 * math.sqrt(400 / math.pi) / _px_per_mm(W / 2, H / 2)
    assert tally.specs["diameter"].min == pytest.approx(0.9 * d, rel=1e-5)
    # Items are measured where they are: the same disk is smaller in mm where w is larger.
    finished = _ride(tally, [(60, 20, 8), (60, 80, 8)])
    near, far = (item.figures["diameter"] for item in finished)
    assert _diameter(8) / _px_per_mm(60, 20) > near > far > _diameter(8) / _px_per_mm(190, 80)


def test_frames_of_another_size_than_the_calibrations_are_reported_once(caplog):
    config = _config(calibration={"homography": HOMOGRAPHY, "image_size": [W, H]})
    with caplog.at_level(logging.ERROR, logger="streamer.stream.tally"):
        _ride(CameraTally(config, "cam0"), [(60, 50, 8)], frames=3)
        assert caplog.records == []  # the size it was made for: nothing to say
        _ride(CameraTally(config, "cam0"), [(60, 50, 8)], frames=3, size=(160, H))
    assert [r.getMessage() for r in caplog.records] == [
        "camera cam0: its calibration was made for 200x100 frames, these are 160x100: its millimetres are wrong "
        "until it is calibrated again (persense calibrate)"]


# -- what the reject stations are handed ----------------------------------------------------------------------
class _Spy:
    def __init__(self):
        self.calls = []

    def update(self, *args):
        self.calls.append(args)
        return ["decided"]


def test_the_reject_stations_get_each_frames_tracks_views_scores_samples_specs_and_velocity():
    tally = CameraTally(_config(specs={"diameter": {"max": 50}}), "cam0")
    tally.rejects = spy = _Spy()
    image = np.zeros((H, W, 3), np.uint8)
    dot = Instance(0, 0.5, (150, 60, 151, 61), np.ones((1, 1), bool))  # one pixel, scored min_view_score: whole
    empty = Instance(0, 0.25, (150, 20, 154, 24), np.zeros((4, 4), bool))  # no pixel: never whole
    edge = _disk(0, 50, 5, score=0.75)  # cut by the frame's edge
    edge_centre = [float(np.nonzero(edge.mask)[1].mean()), 50.0]
    for index in range(3):  # the big disk moves and is matched; the others are new tracks each frame
        frame = Frame(image, index, float(index), "cam0")
        result = SegmentationResult(W, H, [_disk(60 + VX * index, 50, 8, score=0.9), dot, empty, edge])
        tally.observe(frame, result)
        assert tally.reject_events == ["decided"]
        got = spy.calls[-1]
        assert got[0] is frame and got[1:3] == (W, H)
        ids = [inst.track_id for inst in result.instances]
        assert got[3].tolist() == ids and ids[0] == 1
        assert got[4].tolist() == [[60 + VX * index, 50.0], [150.0, 60.0], [151.5, 21.5], edge_centre]
        assert got[5].dtype == bool and got[5].tolist() == [True, True, False, False]  # bool[N], as documented
        assert got[6].dtype == np.float64 and got[6].tolist() == [0.9, 0.5, 0.25, 0.75]
        assert got[7] is tally._samples and 1 in got[7]
        assert got[8] == tally.specs and got[8]["diameter"].max == 50
        assert got[10].tolist() == [VX, 0.0]
    assert spy.calls[0][9] == [] and spy.calls[2][9] == []
    # Nothing seen in a frame at all: the tracks stay, the stations still hear of the frame.
    tally.observe(Frame(image, 3, 3.0, "cam0"), SegmentationResult(W, H, []))
    assert spy.calls[-1][3].tolist() == [] and spy.calls[-1][5].tolist() == []
