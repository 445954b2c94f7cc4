"""Exact cases of the reject decision (streamer.stream.rejects) where the segmentation sees an item in part: an
item judged again while it is seen, a second track of one item, a piece of an item, the truth an item's reject
names. Hand-placed disks on a 200 x 100 frame riding at 5 px per frame (tests.test_tally_exact's)."""

from __future__ import annotations

import numpy as np

from streamer.sources.base import Frame
from streamer.stream.rejects import _truth_ids
from streamer.tracking.belt_places import BeltPlace
from streamer.stream.tally import CameraTally
from streamer.stream.tally_config import TallyConfig
from streamer.types import SegmentationResult
from tests.test_tally_exact import VX, H, W, _diameter, _disk

STILL = (30, 15, 4)  # an item that stays (x, y, r): frames are never empty, so tracks that lost theirs end


def _tally(**station) -> CameraTally:
    # In spec: a diameter (px) between the disks of radius 5 and 7; the station just beyond the exit edge.
    config = {"specs": {"diameter": {"min": _diameter(5) + 0.5, "max": _diameter(7) + 0.5}},
              "tracking": {"velocity": [VX, 0.0], "max_missed": 2, "gate": 1.0},
              "rejects": [{"name": "jet", "line": [0.99, 0, 0.99, 1], "normalized": True, **station}]}
    tally = CameraTally(TallyConfig.model_validate(config), "cam0")
    tally.rejects.wall_clock = tally.rejects.mono_clock = lambda: 0.0
    return tally


def _run(tally: CameraTally, frames: int, disks) -> list:
    """`disks(i)` -> the (x, y, r) disks of frame i (the still item added) -> every reject event decided."""
    image = np.zeros((H, W, 3), np.uint8)
    events = []
    for i in range(frames):
        instances = [_disk(x, y, r) for x, y, r in list(disks(i)) + [STILL]]
        tally.observe(Frame(image, i, float(i), "cam0"), SegmentationResult(W, H, instances))
        events += tally.reject_events
    return events


def test_an_item_in_spec_at_its_first_judgement_is_judged_again_while_it_is_seen():
    """Seen in part (r 6, in spec) in its first 14 views, whole (r 9, too large) after: its decision after 12
    whole views said in spec, and it went on unrejected. Now each view kept judges it again until it nears the
    station: rejected, on time, once."""
    events = _run(_tally(), 36, lambda i: [(20 + VX * i, 60, 6 if i < 14 else 9)] if 20 + VX * i < 185 else [])
    assert len(events) == 1 and not events[0].missed
    assert events[0].reasons[0]["measure"] == "diameter"
    assert events[0].reasons[0]["value"] == round(_diameter(9), 3)


def test_a_second_track_of_an_item_judged_in_spec_is_still_rejected():
    """An item seen in part (r 6) until frame 10, unseen for 4 frames (its track ends, judged in spec), then
    whole (r 9): the second track is rejected. Only a reject already made keeps another of the same place out."""
    def disks(i):
        x = 20 + VX * i
        if i < 10:
            return [(x, 60, 6)]
        return [] if i < 14 or x >= 185 else [(x, 60, 9)]

    events = _run(_tally(), 36, disks)
    assert len(events) == 1 and events[0].reasons[0]["value"] == round(_diameter(9), 3)
    assert events[0].track_id != 1  # the second track's


def test_a_second_track_of_a_rejected_item_is_not_rejected_again():
    def disks(i):
        x = 20 + VX * i
        return [] if 10 <= i < 14 or x >= 185 else [(x, 60, 9)]

    events = _run(_tally(), 36, disks)
    assert len(events) == 1 and events[0].track_id == 1


def test_a_piece_of_a_larger_item_is_not_rejected_as_too_small():
    """A piece (r 3, too small) found inside an in-spec item (r 7) from its 6th view on, beside the item's own
    mask: the piece's track is smaller, seen whole less often, and its centre lies in the item's disc."""
    def disks(i):
        x = 20 + VX * i
        return ([(x, 60, 7)] + ([(x + 3, 61, 3)] if i >= 5 else [])) if x < 185 else []

    assert _run(_tally(), 36, disks) == []
    # The same small disk clear of any larger one is an item of its own: rejected.
    alone = _run(_tally(), 36, lambda i: ([(20 + VX * i, 60, 7)] + ([(20 + VX * i, 30, 3)] if i >= 5 else []))
                 if 20 + VX * i < 185 else [])
    assert len(alone) == 1 and alone[0].reasons[0]["value"] == round(_diameter(3), 3)


def test_two_decisions_are_one_item_by_arrival_or_by_where_each_was_seen_carried_by_the_belt():
    belt = np.array([2.0, 0.0])
    first = BeltPlace(100.0, 40.0, 20.0, 2.0, index=10, seen=np.array([60.0, 40.0]), belt=belt)
    # Arrivals 30 frames (60 units) apart: not one item by them; but the first, seen at 60 at frame 10, is at 80
    # by frame 20, where the later one was seen within half the size (10) of it: the same place.
    later = BeltPlace(130.0, 40.0, 20.0, 2.0, index=20, seen=np.array([89.9, 40.0]), belt=belt)
    assert later.same_item(first)
    assert not BeltPlace(130.0, 40.0, 20.0, 2.0, index=20, seen=np.array([90.1, 40.0]), belt=belt).same_item(first)
    assert not BeltPlace(130.0, 40.0, 20.0, 2.0, index=20, seen=np.array([80.0, 40.0])).same_item(first)  # no belt
    # By arrival alone (as before): within half the larger size along the belt and across it.
    assert BeltPlace(104.9, 49.9, 20.0, 2.0).same_item(first) and not BeltPlace(105.1, 40.0, 20.0, 2.0).same_item(first)


class _Truth:
    simulator = None

    def __init__(self, ids, centres, diameters_px):
        self.ids = np.array(ids, np.int64)
        self.centres = np.array(centres, float).reshape(-1, 2)
        self.diameters_px = np.array(diameters_px, float)


def test_a_track_names_the_truth_item_whose_disc_holds_its_centroid():
    # A large item (diameter 100) whose centroid was found 40 px off its centre is still that item; a point 11 px
    # from a small item (diameter 20) is none.
    truth = _Truth([7, 8], [[100.0, 50.0], [300.0, 50.0]], [100.0, 20.0])
    centres = np.array([[140.0, 50.0], [311.0, 50.0], [301.0, 52.0], [200.0, 50.0]])
    assert _truth_ids(truth, centres).tolist() == [7, -1, 8, -1]
    assert _truth_ids(_Truth([], [], []), centres).tolist() == [-1] * 4
    assert _truth_ids(object(), centres) is None
