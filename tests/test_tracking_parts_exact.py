"""Exact cases of the tracking parts (streamer.tracking: tracker, crossing, zones, measure) at the boundaries a
slip would move: the gate and the bootstrap's search radius at their edge, a smoothing step, a pixel's own
variance, an upright mask's orientation, a vertex on a point's row, a box one pixel from the frame's edge.
Hand-placed points and masks of a few pixels: milliseconds, so tools/mutation.py runs them for every mutant.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from streamer.tracking.crossing import LineCounter, side
from streamer.tracking.measure import COLUMN, as_dict, lattice_points, measure, measure_shapes, touches_border
from streamer.tracking.tracker import BeltTracker, TrackerParams, belt_shift
from streamer.tracking.zones import ZoneCounter, inside

SIZE10 = np.array([10.0])


# -- the tracker ----------------------------------------------------------------------------------------------
def test_track_ids_are_ints_in_every_answer():
    tracker = BeltTracker(TrackerParams(velocity=(5.0, 0.0), max_missed=0))
    ids, ended = tracker.update(0, [[0.0, 0.0]], SIZE10)
    assert ids.dtype == np.int64 and ids.tolist() == [1]
    ids, ended = tracker.update(1, np.zeros((0, 2)), np.zeros(0))  # nothing seen
    assert ids.dtype == np.int64 and ids.tolist() == [] and ended == []
    ids, ended = tracker.update(2, [[100.0, 100.0]], SIZE10)
    assert ended == [1] and type(ended[0]) is int and ids.dtype == np.int64
    assert [type(i) for i in tracker.reset()] == [int]
    tracker.update(3, [[0.0, 0.0]], SIZE10)  # after a reset too
    ids, ended = tracker.update(4, [[100.0, 100.0]], SIZE10)
    assert ended == [3] and type(ended[0]) is int and ids.dtype == np.int64


def test_a_reset_tracker_takes_any_frame_index_next():
    tracker = BeltTracker(TrackerParams(velocity=(5.0, 0.0)))
    tracker.update(10, [[0.0, 0.0]], SIZE10)
    assert tracker.reset() == [1] and tracker.active == 0
    ids, ended = tracker.update(3, [[0.0, 0.0]], SIZE10)  # an earlier index after a reset: no second reset
    assert ids.tolist() == [2] and ended == []
    assert tracker.update(4, [[5.0, 0.0]], SIZE10)[0].tolist() == [2]


def test_a_detection_exactly_at_the_gate_still_matches():
    tracker = BeltTracker(TrackerParams(velocity=(0.0, 0.0), gate=0.5))
    tracker.update(0, [[0.0, 0.0]], SIZE10)
    assert tracker.update(1, [[5.0, 0.0]], SIZE10)[0].tolist() == [1]  # 5 px = 0.5 x 10
    assert tracker.update(2, [[10.5, 0.0]], SIZE10)[0].tolist() == [2]


def test_sizes_below_one_pixel_count_as_one_for_the_gate():
    tracker = BeltTracker(TrackerParams(velocity=(0.0, 0.0), gate=0.5))
    tracker.update(0, [[0.0, 0.0]], [0.2])
    assert tracker.update(1, [[0.5, 0.0]], [0.2])[0].tolist() == [1]  # gate 0.5 x 1 px
    tracker = BeltTracker(TrackerParams(velocity=(0.0, 0.0), gate=0.5))
    tracker.update(0, [[0.0, 0.0]], [1.5])
    assert tracker.update(1, [[0.9, 0.0]], [1.5])[0].tolist() == [2]  # gate 0.75 px: missed


def test_centres_and_sizes_of_any_shape_are_read_as_lists():
    tracker = BeltTracker(TrackerParams(velocity=(1.0, 0.0)))
    assert tracker.update(0, [0.0, 0.0], [[10.0]])[0].tolist() == [1]
    assert tracker.update(1, np.array([[[1.0, 0.0]]]), np.array([[10.0]]))[0].tolist() == [1]


def _bootstrap(displacement, step=1, search=1.0):
    """Two items (size 10) seen, then seen again `displacement` away after `step` frames, with no velocity
    given -> their ids the second time and the tracker."""
    tracker = BeltTracker(TrackerParams(search=search))
    start = np.array([[0.0, 0.0], [0.0, 40.0]])
    tracker.update(0, start, [10.0, 10.0])
    ids, _ = tracker.update(step, start + displacement, [10.0, 10.0])
    return ids.tolist(), tracker


def test_the_bootstrap_finds_the_belts_motion_per_source_frame():
    ids, tracker = _bootstrap([6.0, 1.0], step=2)
    assert ids == [1, 2] and tracker.velocity.tolist() == [3.0, 0.5]
    ids, tracker = _bootstrap([6.0, 1.0], step=2)
    tracker.update(3, [[9.0, 1.5], [9.0, 41.5]], [10.0, 10.0])
    assert tracker.velocity.tolist() == [3.0, 0.5]


def test_the_bootstrap_searches_one_diameter_and_a_pixel_per_frame_step():
    assert _bootstrap([11.0, 0.0])[0] == [1, 2]  # 1.0 x 10 + 1 px: just within the search
    assert _bootstrap([11.5, 0.0])[0] == [3, 4]  # beyond it: no motion found, no match
    assert _bootstrap([16.0, 0.0], search=1.5)[0] == [1, 2]


def test_the_bootstrap_picks_the_common_motion_among_neighbours_not_the_mean_of_all_pairs():
    # Items 11 px apart moved 3 px: each also lies 8 px back from its left neighbour, within the search radius
    # (11 px). The common motion (3, 0) wins; the mean of all pairs (-1.4, 0) would miss the 3 px gate.
    tracker = BeltTracker(TrackerParams(gate=0.3))
    row = np.array([[0.0, 50.0], [11.0, 50.0], [22.0, 50.0]])
    tracker.update(0, row, [10.0] * 3)
    assert tracker.update(1, row + [3.0, 0.0], [10.0] * 3)[0].tolist() == [1, 2, 3]


def test_the_bootstrap_uses_only_the_tracks_seen_in_the_last_frame():
    # A is seen at frame 0 only; C appears at frame 1 far away; at frame 2 C has moved (6, 0) and A's item is
    # back 12 px on. Only C (seen last frame) may bootstrap: its motion (6, 0) a frame carries A to (12, 0).
    tracker = BeltTracker(TrackerParams())
    tracker.update(0, [[0.0, 0.0]], SIZE10)
    assert tracker.update(1, [[100.0, 100.0]], SIZE10)[0].tolist() == [2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no median of an empty slice on the way
        ids, ended = tracker.update(2, [[106.0, 100.0], [12.0, 0.0]], [10.0, 10.0])
    assert ids.tolist() == [2, 1] and ended == [] and tracker.velocity.tolist() == [6.0, 0.0]


def _four_standing_one_moved(moved, diameter, gate):
    """Five items 300 px apart (no pair but their own within the search), four of them standing and one moved
    `moved` px along x, with no velocity given -> their ids the second time."""
    tracker = BeltTracker(TrackerParams(gate=gate))
    start = np.array([[0.0, 300.0 * k] for k in range(5)])
    tracker.update(0, start, [diameter] * 5)
    start[4, 0] += moved
    return tracker.update(1, start, [diameter] * 5)[0].tolist()


def test_the_bootstrap_bins_displacements_at_an_eighth_of_the_diameter():
    # Diameter 80: search radius 81 px in 17 bins of 9.53 px. The 3x3 bins around the one right of the standing
    # items' hold all five moves, so the bootstrap averages them: (0 x 4 + 22) / 5 = 4.4 px. The moved item is
    # 17.6 px from that prediction, within the gate (0.25 x 80 = 20 px). Bins of 80/9 px would leave its move
    # out (prediction 0, 22 px off: a new track).
    assert _four_standing_one_moved(22.0, 80.0, gate=0.25) == [1, 2, 3, 4, 5]


def test_the_bootstrap_bins_are_at_least_a_pixel_wide():
    # Diameter 4: bins of max(4/8, 1) = 1 px keep a 3 px move apart from the standing items' (prediction 0), so
    # the moved item is 3 px off, beyond the gate (0.65 x 4 = 2.6 px): a new track. Bins of 2 px would average
    # it in (prediction 0.6 px, 2.4 px off) and keep its id.
    assert _four_standing_one_moved(3.0, 4.0, gate=0.65) == [1, 2, 3, 4, 6]


def test_the_velocity_moves_by_the_smoothing_weight_once_three_tracks_agree():
    tracker = BeltTracker(TrackerParams(smoothing=0.25))
    rows = np.array([[0.0, 0.0], [0.0, 40.0], [0.0, 80.0]])
    tracker.update(0, rows, [10.0] * 3)
    tracker.update(1, rows + [4.0, 0.0], [10.0] * 3)
    assert tracker.velocity.tolist() == [4.0, 0.0]  # the first estimate, taken whole
    tracker.update(2, rows + [12.0, 0.0], [10.0] * 3)  # 8 px this frame, by three tracks
    assert tracker.velocity.tolist() == [5.0, 0.0]  # 0.75 x 4 + 0.25 x 8
    tracker.update(3, rows[:2] + [20.0, 0.0], [10.0] * 2)  # two matches only: too few to move it
    assert tracker.velocity.tolist() == [5.0, 0.0]


def _shift(previous, current, radius=10.0, bin_px=1.0):
    got = belt_shift(np.array(previous, float).reshape(-1, 2), np.array(current, float).reshape(-1, 2), radius, bin_px)
    return None if got is None else got.tolist()


def test_belt_shift_of_one_pair_is_its_displacement_up_to_the_radius():
    assert _shift([[10.0, 20.0]], [[13.0, 24.0]], radius=5.0) == [3.0, 4.0]  # exactly the radius away
    assert _shift([[10.0, 20.0]], [[13.0, 24.1]], radius=5.0) is None
    assert _shift([[10.0, 20.0], [60.0, 20.0]], [[13.0, 24.0]], radius=5.0) == [3.0, 4.0]
    assert _shift([[10.0, 20.0]], [[13.0, 24.0], [90.0, 90.0]], radius=5.0) == [3.0, 4.0]
    assert _shift([], [[1.0, 1.0]]) is None and _shift([[1.0, 1.0]], []) is None


def test_belt_shift_measures_each_pairs_distance_in_both_axes():
    # Three items, two of them displaced (3.9, 2.0): 4.4 px, beyond the radius of 4; the third moved (1, 1).
    previous = [[0.0, 0.0], [50.0, 0.0], [100.0, 0.0]]
    current = [[3.9, 2.0], [53.9, 2.0], [101.0, 1.0]]
    assert _shift(previous, current, radius=4.0) == [1.0, 1.0]


def _reference_shift(previous, current, radius, bin_px):
    """belt_shift as its docstring tells it, in plain loops: every displacement within `radius`, counted in square
    bins over [-radius, radius]; the bin whose 3x3 neighbourhood holds the most wins (the first in row order on
    a tie); the mean of the displacements within 1.5 bin_px of its centre on both axes."""
    d = [(cx - px, cy - py) for px, py in previous for cx, cy in current if math.hypot(cx - px, cy - py) <= radius]
    if not d:
        return None
    bins = max(math.ceil(2 * radius / bin_px), 1)
    width = 2 * radius / bins
    counts = [[0] * bins for _ in range(bins)]
    for dx, dy in d:
        i, j = (min(int((v + radius) // width), bins - 1) for v in (dx, dy))
        counts[i][j] += 1
    best, where = -1, None
    for i in range(bins):
        for j in range(bins):
            votes = sum(counts[a][b] for a in range(i - 1, i + 2) for b in range(j - 1, j + 2)
                        if 0 <= a < bins and 0 <= b < bins)
            if votes > best:
                best, where = votes, (i, j)
    centre = [-radius + (k + 0.5) * width for k in where]
    near = [p for p in d if abs(p[0] - centre[0]) <= 1.5 * bin_px and abs(p[1] - centre[1]) <= 1.5 * bin_px]
    return [sum(p[0] for p in near) / len(near), sum(p[1] for p in near) / len(near)]


def test_belt_shift_averages_the_pairs_near_the_densest_bin_only():
    # Bins of 1 px over [-10, 10]. Ten items moved; most agree near (2.5, 0.5), whose bin wins; (1.0, 0.5) and
    # (4.0, 0.5) lie exactly 1.5 bins from its centre (in), (4.6, 0.5) beyond (out), (2.5, 2.0) within.
    previous = [[30.0 * k, 0.0] for k in range(10)]
    moved = [[2.5, 0.5]] * 3 + [[1.9, 0.5]] * 2 + [[1.0, 0.5], [3.1, 0.5], [4.0, 0.5], [4.6, 0.5], [2.5, 2.0]]
    current = (np.array(previous) + moved).tolist()
    inside_ = [m for m in moved if m != [4.6, 0.5]]
    expected = [sum(m[0] for m in inside_) / 9, sum(m[1] for m in inside_) / 9]
    assert _shift(previous, current, radius=10.0) == pytest.approx(expected)
    assert _reference_shift(previous, current, 10.0, 1.0) == pytest.approx(expected)


def test_belt_shift_agrees_with_its_description_on_random_belts():
    rng = np.random.default_rng(0)
    for case in range(200):
        radius, bin_px = float(rng.choice([4.0, 6.0, 10.0])), float(rng.choice([0.7, 1.0, 1.25, 2.0]))
        previous = rng.uniform(0, 300, (int(rng.integers(3, 9)), 2))
        current = previous + rng.uniform(-radius / 2, radius / 2, 2) + rng.normal(0, bin_px, previous.shape)
        current = np.concatenate([current, rng.uniform(0, 300, (int(rng.integers(0, 4)), 2))])
        got, expected = _shift(previous, current, radius, bin_px), _reference_shift(
            previous.tolist(), current.tolist(), radius, bin_px)
        assert (got is None) == (expected is None), case
        if got is not None:
            assert got == pytest.approx(expected, abs=1e-9), case



def test_belt_shift_counts_votes_past_255_in_a_crowd():
    # Forty detections within a few pixels (a heap of debris) moved together: 1600 pairs, most in a few bins, so
    # an 8-bit vote would saturate and tie.
    rng = np.random.default_rng(3)
    previous = rng.uniform(0, 6, (40, 2))
    current = previous + [3.0, 0.0] + rng.normal(0, 0.3, previous.shape)
    expected = _reference_shift(previous.tolist(), current.tolist(), 11.0, 1.25)
    assert _shift(previous, current, 11.0, 1.25) == pytest.approx(expected) and expected[0] == pytest.approx(3.0, abs=0.1)


# -- counting lines -------------------------------------------------------------------------------------------
def test_side_of_a_slanted_line_counts_both_offsets():
    line = (10.0, 20.0, 40.0, 60.0)  # length 50
    assert side([[10.0, 70.0]], line).tolist() == pytest.approx([-30.0])  # (0 x 40 - 50 x 30) / 50
    assert side([[40.0, 20.0]], line).tolist() == pytest.approx([24.0])  # (30 x 40 - 0 x 30) / 50


def test_a_forgotten_track_starts_afresh_and_a_single_id_may_be_given_as_a_scalar():
    counter = LineCounter((50.0, 0.0, 50.0, 100.0))
    assert counter.update(7, [[40.0, 10.0]]) == []
    counter.forget([7, 99])  # 99 was never seen: nothing to forget, no error
    assert counter.update(7, [[60.0, 10.0]]) == []  # first seen on the forward side now: no crossing
    assert counter.update(np.array([[7]]), [[40.0, 10.0]]) == [(7, "backward")]


# -- zones ----------------------------------------------------------------------------------------------------
DIAMOND = np.array([[5.0, 0.0], [10.0, 5.0], [5.0, 10.0], [0.0, 5.0]])
SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])


def test_a_point_on_a_vertex_row_is_told_inside_or_outside_rightly():
    # The row y = 5 passes through the diamond's left and right vertices.
    assert inside([[5.0, 5.0], [-3.0, 5.0], [13.0, 5.0], [5.0, 9.0]], DIAMOND).tolist() == [True, False, False, True]


def test_edges_belong_to_the_zone_below_and_right_of_them_and_horizontal_edges_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # horizontal edges divide by zero; that is expected, not a warning
        got = inside([[0.0, 5.0], [10.0, 5.0], [5.0, 0.0], [5.0, 10.0]], SQUARE)
    assert got.tolist() == [True, False, True, False]
    # So two zones sharing an edge never both claim a point on it.
    right = SQUARE + [10.0, 0.0]
    assert inside([[10.0, 5.0]], right).tolist() == [True] and inside([[10.0, 5.0]], SQUARE).tolist() == [False]


def test_a_zone_reports_who_entered_and_adds_up_fractions_of_seconds():
    zone = ZoneCounter(SQUARE)
    assert zone.update(np.array([3, 4]), [[5.0, 5.0], [50.0, 5.0]], 10.0) == [3]
    assert zone.update(3, [[6.0, 5.0]], 10.25) == []  # a single id, as a scalar
    assert zone.update(np.array([[3], [4]]), [[7.0, 5.0], [5.0, 5.0]], 10.5) == [4]
    assert zone.in_zone() == {3: 0.5, 4: 0.0} and zone.entries == 2
    assert zone.forget([3]) == {3: 0.5}
    assert zone.forget([4, 5]) == {4: 0.0} and zone.occupancy == 0
    assert zone._last == {} and zone._seconds == {}  # bounded: ended tracks leave nothing behind


# -- measurements ---------------------------------------------------------------------------------------------
def _measure(mask, box=None):
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    box = box or (0, 0, w, h)
    table, centres = measure(np.zeros((box[3], box[2], 3), np.uint8), [box], [mask])
    return table[0], centres[0]


def test_a_single_pixel_has_the_unit_squares_own_spread():
    row, centre = _measure([[True]])
    # A unit square's variance along each axis is 1/12: the ellipse of the same second moments has axes
    # 4 sqrt(1/12).
    assert row[COLUMN["major_axis"]] == pytest.approx(4 * math.sqrt(1 / 12))
    assert row[COLUMN["minor_axis"]] == pytest.approx(4 * math.sqrt(1 / 12))
    assert row[COLUMN["area"]] == 1.0 and row[COLUMN["solidity"]] == 1.0 and centre.tolist() == [0.0, 0.0]


def test_an_upright_bar_is_oriented_minus_90_and_a_lying_one_0():
    upright, _ = _measure(np.ones((5, 1)))
    assert upright[COLUMN["orientation"]] == -90.0
    # Variance along y: (5^2 - 1) / 12 + 1/12 = 25/12; along x: 1/12.
    assert upright[COLUMN["major_axis"]] == pytest.approx(4 * math.sqrt(25 / 12))
    assert upright[COLUMN["minor_axis"]] == pytest.approx(4 * math.sqrt(1 / 12))
    lying, _ = _measure(np.ones((1, 5)))
    assert lying[COLUMN["orientation"]] == 0.0


def test_a_mask_without_pixels_measures_nothing_silently_at_its_box_centre():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measured = measure_shapes(np.array([[10, 20, 14, 26]]), [np.zeros((6, 4), bool)])
    assert measured.table[0, COLUMN["area"]] == 0.0 and np.isnan(measured.table[0, 1:]).all()
    assert measured.centres.tolist() == [[11.5, 22.5]]


def test_undefined_figures_are_none_in_a_message():
    row = np.array([1.23456, np.nan, np.inf, -np.inf, 2.0, 0.5, 1.0, 2.0, 3.0])
    assert list(as_dict(row).values()) == [1.235, None, None, None, 2.0, 0.5, 1.0, 2.0, 3.0]
    assert as_dict(row, digits=1)["area"] == 1.2


def test_lattice_points_of_polygons_by_picks_theorem():
    triangle = np.array([[[0, 0]], [[4, 0]], [[0, 4]]])  # area 8, 12 boundary points: 15 in all
    rectangle = np.array([[[0, 0]], [[3, 0]], [[3, 2]], [[0, 2]]])  # 4 x 3
    slanted = np.array([[[0, 0]], [[2, 1]], [[0, 2]]])  # area 2, boundary 4 (2 + 1 + 1): 5 in all
    segment = np.array([[[0, 0]], [[3, 0]]])
    point = np.array([[[5, 5]]])
    got = lattice_points([triangle, rectangle, slanted, segment, point])
    assert got.tolist() == [15.0, 12.0, 5.0, 4.0, 1.0]
    assert lattice_points([]).shape == (0,)


def test_a_box_touches_the_border_within_the_margin_only():
    boxes = [(1, 1, 99, 49), (0, 5, 10, 10), (5, 0, 10, 10), (5, 5, 100, 10), (5, 5, 10, 50)]
    assert touches_border(boxes, 100, 50).tolist() == [False, True, True, True, True]
    assert touches_border((1, 1, 99, 49), 100, 50).tolist() == [False]  # one box, flat
    assert touches_border([(2, 2, 98, 48), (1, 5, 10, 10), (5, 5, 10, 49)], 100, 50, margin=2).tolist() == [
        False, True, True]
