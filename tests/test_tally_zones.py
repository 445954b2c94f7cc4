"""Zones (streamer.tracking.zones, streamer.stream.tally_zones): geometry, entries counted once, time in zone,
and what result headers, tally messages and metrics say about them."""

import json

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from streamer.config import Config
from streamer.stream.metrics import StreamMetrics
from streamer.stream.tally import CameraTally
from streamer.stream.tally_config import TallyConfig
from streamer.stream.tally_sink import TallySink
from streamer.tracking.zones import ZoneCounter, inside, polygon_area
from tests.test_stream_tally import _config, _frames

SQUARE = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 50.0], [10.0, 50.0]])
MIDDLE = [[0.4, 0.0], [0.6, 0.0], [0.6, 1.0], [0.4, 1.0]]  # a band across the flow simulator's belt


def test_inside_agrees_with_opencv_on_a_concave_polygon():
    star = np.array([[50, 0], [61, 35], [98, 35], [68, 57], [79, 91], [50, 70], [21, 91], [32, 57], [2, 35],
                     [39, 35]], np.float64)
    points = np.random.default_rng(3).uniform(-5, 105, (2000, 2))
    expected = np.array([cv2.pointPolygonTest(star.astype(np.float32), (float(x), float(y)), True)
                         for x, y in points])
    got = inside(points, star)
    clear = np.abs(expected) > 1e-6  # points on an edge may go either way
    assert np.array_equal(got[clear], expected[clear] > 0)
    assert 0.2 < got.mean() < 0.6
    assert polygon_area(SQUARE) == 1600.0 and polygon_area([[0, 0], [1, 1], [2, 2]]) == 0.0


def test_entries_are_counted_once_and_time_in_zone_adds_up_only_inside():
    zone = ZoneCounter(SQUARE)
    # Track 1 jitters across the left edge for 20 views (one second apart), then stays inside.
    for t in range(20):
        zone.update(np.array([1]), np.array([[9.0 if t % 2 else 11.0, 30.0]]), float(t))
    assert zone.entries == 1
    # 10 views out of 20 inside, none consecutive: no time inside yet.
    assert zone.in_zone() == {} and zone.forget([]) == {}
    zone.update(np.array([1]), np.array([[12.0, 30.0]]), 20.0)
    zone.update(np.array([1]), np.array([[14.0, 30.0]]), 21.0)
    assert zone.in_zone() == {1: 1.0} and zone.occupancy == 1
    # Hidden for 5 s while inside (no view), seen inside again: the hidden time counts.
    zone.update(np.array([2]), np.array([[80.0, 80.0]]), 22.0)
    assert zone.occupancy == 0
    zone.update(np.array([1, 2]), np.array([[16.0, 30.0], [30.0, 30.0]]), 26.0)
    assert zone.in_zone() == {1: 6.0, 2: 0.0} and zone.entries == 2
    # Leaves and comes back: the time outside does not count, and it is no new entry.
    zone.update(np.array([1, 2]), np.array([[70.0, 30.0], [31.0, 30.0]]), 27.0)
    zone.update(np.array([1, 2]), np.array([[40.0, 30.0], [32.0, 30.0]]), 30.0)
    zone.update(np.array([1, 2]), np.array([[41.0, 30.0], [33.0, 30.0]]), 31.0)
    assert zone.entries == 2 and zone.in_zone() == {1: 7.0, 2: 5.0}
    assert zone.forget([1, 3]) == {1: 7.0}  # track 3 was never in the zone
    assert zone.in_zone() == {2: 5.0}


def test_a_stopped_item_on_the_edge_is_one_entry():
    zone = ZoneCounter(SQUARE)
    for t in range(100):
        zone.update(np.array([7]), np.array([[10.0 + 0.01 * (t % 3 - 1), 20.0]]), float(t))
    assert zone.entries == 1


def test_flow_items_each_enter_once_and_spend_the_band_width_over_the_belt_speed_in_it():
    tally, steps, seen_inside = None, [], set()
    for frame, result, sim in _frames(1):
        if tally is None:
            tally = CameraTally(_config(zones=[{"points": MIDDLE, "name": "middle"}]), "cam0", sim.support()[1])
        tally.observe(frame, result)
        steps += tally.zone_steps
        truth = frame.truth
        seen_inside |= set(truth.ids[(truth.centres[:, 0] > 64) & (truth.centres[:, 0] < 96)].tolist())
    header = result.tally["zones"]["middle"]
    assert abs(header["entries_total"] - len(seen_inside)) <= 1 and header["entries_total"] > 20
    assert header["in_zone"] == len(header["inside"]) == tally.zones.zones[0].counter.occupancy
    # Frames are one second apart (capture_ts = index) and the belt moves 3 px a frame: a band of 32 px takes
    # 32 / 3 = 10.7 s to cross; between its first and last view inside an item spends 10 s, or 9 s.
    left = [s for step in steps for s in step.left.values()]
    assert len(left) > 20 and set(np.round(left)) <= {9.0, 10.0}
    doc = tally.take_interval()["zones"]["middle"]
    assert doc["entries"] == doc["entries_total"] == header["entries_total"]
    assert sorted(d["seconds"] for d in doc["dwell"]) == sorted(round(s, 3) for s in left)
    assert doc["dwell_median_s"] in (9.0, 10.0, 9.5)
    again = tally.take_interval()["zones"]["middle"]
    assert again["entries"] == 0 and again["dwell"] == [] and again["entries_total"] == doc["entries_total"]


def test_zone_metrics_and_tally_messages():
    sent, metrics = [], StreamMetrics(["cam0"])
    clock = iter(range(1000)).__next__

    class Sink:
        def submit(self, frame, result, support_id, wait=False):
            return True

    config = _config(interval_s=10, zones=[{"points": MIDDLE, "name": "middle"}])
    sink = TallySink(Sink(), config, ["cam0"], metrics, lambda cam, parts: sent.append(parts),
                     clock=lambda: float(clock()))
    labels = {"camera": "cam0", "zone": "middle"}
    assert metrics.registry.get_sample_value("persense_zone_entries_total", labels) == 0.0
    for frame, result, _ in _frames(2, n=200):
        sink.submit(frame, result, "s1")
    docs = [json.loads(parts[1]) for parts in sent]
    entries = metrics.registry.get_sample_value("persense_zone_entries_total", labels)
    assert docs and all(parts[0] == b"persense/cam0/tally" for parts in sent)
    # The last message is as old as its interval; the counter has every entry since.
    assert sink.tallies["cam0"].zones.zones[0].counter.entries == entries >= docs[-1]["zones"]["middle"][
        "entries_total"] > 10
    assert metrics.registry.get_sample_value("persense_zone_items", labels) == (
        sink.tallies["cam0"].zones.zones[0].counter.occupancy)
    dwell_count = metrics.registry.get_sample_value("persense_zone_seconds_count", labels)
    assert dwell_count == sum(len(d["zones"]["middle"]["dwell"]) for d in docs) + len(
        sink.tallies["cam0"].zones.zones[0].dwell) > 5


@pytest.mark.parametrize("zones, why", [
    ([{"points": [[0.1, 0.1], [0.5, 0.5]]}], "at least 3"),
    ([{"points": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}], "an area"),
    ([{"points": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}], r"\[0, 1\]"),
    ([{"points": [[10, 10], [-1, 10], [5, 50]], "normalized": False}], "negative"),
    ([{"points": MIDDLE, "name": "a"}, {"points": MIDDLE, "name": "a", "camera": "cam0"}], "twice"),
])
def test_bad_zones_are_refused(zones, why):
    with pytest.raises(ValidationError, match=why):
        Config.model_validate({"stream": {"tally": {"zones": zones}}})


def test_zones_alone_turn_tracking_on_and_a_pixel_zone_outside_the_frame_is_left_out(caplog):
    config = TallyConfig.model_validate({"zones": [{"points": [[100, 0], [500, 0], [500, 100]], "normalized": False},
                                                   {"points": MIDDLE, "camera": "other"}]})
    assert config.active
    frame, result, _ = next(_frames(1))
    tally = CameraTally(config, "cam0")
    assert [z.name for z in tally.zones.zones] == ["zone0"]  # the other camera's zone is not this one's
    tally.observe(frame, result)
    assert tally.zones.zones == [] and "outside" in caplog.text and "zones" not in result.tally


@pytest.mark.parametrize("points, normalized", [([(0.0, 0.1), (0.1, 0.1), (0.9, 0.1)], True),
                                                ([(0.0, 0.1), (0.1, 0.2), (0.8, 0.9)], True),
                                                ([(10.0, 20.0), (30.0, 40.0), (110.0, 120.0)], False)])
def test_a_zone_on_one_line_is_refused_whatever_the_rounding(points, normalized):
    """Three points on one line have an area of 0 up to rounding (6.9e-18 and 7e-18 for the first two, found by a
    second reader; the check was `> 0`)."""
    assert polygon_area(points) < 1e-15
    with pytest.raises(ValidationError, match="a polygon with an area"):
        TallyConfig.model_validate({"zones": [{"points": points, "normalized": normalized}]})


def test_a_small_zone_with_an_area_is_kept():
    tiny = [(0.5, 0.5), (0.501, 0.5), (0.5, 0.501)]  # half a millionth of the frame
    assert TallyConfig.model_validate({"zones": [{"points": tiny}]}).zones[0].points == tiny
