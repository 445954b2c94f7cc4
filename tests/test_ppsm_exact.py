"""PPSM where the answer is exact: non-integer points sample the nearest pixel (rounding, not truncation; ties
to even as numpy's rint), box edges count, boxes with fractional corners, ties in the argmax."""

import math

import numpy as np

from streamer.persense.ppsm import argmax_point, inside_any_box, ppsm, sample_at, top_points


def index_map(h=20, w=30):
    """Every pixel holds its own index y * w + x: a sample names the pixel it read."""
    return np.arange(h * w, dtype=np.float64).reshape(h, w)


def test_sample_at_rounds_to_the_nearest_pixel():
    sim = index_map()
    points = np.array([[10.6, 5.4], [10.4, 5.6], [3.5, 2.5], [4.5, 3.5], [0.49, 0.51]])
    # rint: 10.6 -> 11, 5.4 -> 5; 3.5 -> 4 and 2.5 -> 2 (ties to even); 4.5 -> 4, 3.5 -> 4.
    expected = [(11, 5), (10, 6), (4, 2), (4, 4), (0, 1)]
    assert sample_at(sim, points).tolist() == [y * 30 + x for x, y in expected]


def test_sample_at_clips_to_the_map():
    sim = index_map()
    points = np.array([[-3.2, -0.7], [29.4, 19.4], [29.6, 19.6], [100, 2], [2, 100], [0.0, 19.0], [29.0, 0.0]])
    expected = [(0, 0), (29, 19), (29, 19), (29, 2), (2, 19), (0, 19), (29, 0)]
    assert sample_at(sim, points).tolist() == [y * 30 + x for x, y in expected]
    assert sample_at(sim, [5, 6]).tolist() == [6 * 30 + 5]  # one point as a flat pair


def test_inside_any_box_counts_every_edge_and_nothing_beyond():
    box = np.array([[10.0, 20.0, 30.0, 40.0]])
    on_edges = np.array([[10, 25], [30, 25], [15, 20], [15, 40], [10, 20], [30, 40]])
    assert inside_any_box(on_edges, box).tolist() == [True] * 6
    beyond = np.array([[9.99, 25], [30.01, 25], [15, 19.99], [15, 40.01], [25, 10], [5, 30]])
    assert inside_any_box(beyond, box).tolist() == [False] * 6
    # A second box: inside either counts; no box: nothing is inside.
    boxes = np.array([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 5.0, 5.0]])
    assert inside_any_box([[2, 3], [20, 30], [7, 7]], boxes).tolist() == [True, True, False]
    assert inside_any_box([[2, 3]], np.zeros((0, 4))).tolist() == [False]
    assert inside_any_box(np.zeros((0, 2)), boxes).shape == (0,)


def test_argmax_point_inside_a_fractional_box_includes_the_pixels_it_touches():
    sim = np.zeros((20, 30), np.float32)
    sim[3, 2] = 0.5  # inside: floor(2.5) = 2, floor(3.5) = 3
    sim[8, 7] = 0.4  # inside: ceil(7.2) = 8 exclusive, ceil(8.9) = 9 exclusive
    sim[9, 8] = 0.9  # outside the box (the global maximum)
    box = np.array([2.5, 3.5, 7.2, 8.9])
    assert argmax_point(sim).tolist() == [8, 9]
    assert argmax_point(sim, box).tolist() == [2, 3]
    sim[3, 2] = 0.0
    assert argmax_point(sim, box).tolist() == [7, 8]
    sim[8, 7] = 0.0
    sim[9, 7] = sim[8, 8] = 0.95  # just outside, below and right
    assert argmax_point(sim, box).tolist() == [2, 3]  # all zeros inside: the box's first pixel
    assert argmax_point(sim, box).dtype == np.float32


def test_argmax_point_ties_go_to_the_first_pixel_in_row_order():
    sim = np.zeros((10, 10), np.float32)
    sim[4, 7] = sim[4, 2] = sim[6, 1] = 1.0
    assert argmax_point(sim).tolist() == [2, 4]
    assert argmax_point(sim, np.array([3, 3, 9, 9])).tolist() == [7, 4]


def test_argmax_point_box_beyond_the_map_is_clipped_and_never_empty():
    sim = np.zeros((10, 12), np.float32)
    sim[9, 11] = 1.0
    sim[0, 0] = 0.5
    assert argmax_point(sim, np.array([-5.0, -5.0, 50.0, 50.0])).tolist() == [11, 9]
    # A box wholly past the bottom-right corner still holds the last pixel.
    assert argmax_point(sim, np.array([40.0, 40.0, 50.0, 50.0])).tolist() == [11, 9]
    # A box past the top-left corner holds the first.
    assert argmax_point(sim, np.array([-9.0, -9.0, -5.0, -5.0])).tolist() == [0, 0]
    # A degenerate box (x1 <= x0) still holds its first column and row.
    assert argmax_point(sim, np.array([11.0, 9.0, 3.0, 2.0])).tolist() == [11, 9]
    assert argmax_point(sim, np.array([0.0, 0.0, 0.0, 0.0])).tolist() == [0, 0]


def test_top_points_separation_is_strict_and_boxes_clip_like_argmax():
    sim = np.zeros((30, 40), np.float32)
    sim[10, 10] = 1.0
    sim[10, 15] = 0.9  # exactly 5 px away: kept at separation 5 (closer than 5 is passed over)
    sim[13, 14] = 0.8  # 3-4-5 from (10, 10), sqrt(10) from (15, 10): passed over
    sim[20, 30] = 0.7
    assert top_points(sim, 4, separation=5).tolist() == [[10, 10], [15, 10], [30, 20], [0, 0]]
    assert top_points(sim, 2, separation=5).tolist() == [[10, 10], [15, 10]]
    # Just above 5 both neighbours of (10, 10) are passed over.
    assert top_points(sim, 3, separation=5.01).tolist() == [[10, 10], [30, 20], [0, 0]]
    box = np.array([12.5, 9.5, 30.2, 20.5])  # pixels x 12..30, y 9..20
    assert top_points(sim, 3, separation=5, box=box).tolist() == [[15, 10], [30, 20], [20, 9]]  # (12..19, 9) lie within 5 of (15, 10)
    assert top_points(sim, 0, separation=5).shape == (0, 2)
    # A box past the map's edge keeps its last row and column; every pixel is used before the map runs out.
    assert top_points(sim, 9, separation=1, box=np.array([50.0, 50.0, 60.0, 60.0])).tolist() == [[39, 29]]
    assert top_points(sim, 5, separation=1, box=np.array([-9.0, -9.0, -5.0, -5.0])).tolist() == [[0, 0]]
    assert top_points(sim, 2, separation=5).dtype == np.float32
    assert sim[10, 10] == 1.0  # the caller's map is not modified


def test_ppsm_threshold_uses_the_maximum_of_the_whole_map_and_strictly_greater():
    sim = np.zeros((20, 30), np.float32)
    sim[0, 0] = 0.8  # S_max, not a candidate
    sim[5, 5] = 0.4
    sim[5, 6] = 0.25
    points = np.array([[5.4, 5.4], [5.6, 5.0], [5.0, 5.6]], np.float32)
    # C = 4, k = 2: T = 0.8 / (4 / 2) = 0.4; (5.4, 5.4) reads exactly 0.4: not kept (strict).
    assert ppsm(points, sim, count=4, k=2.0).tolist() == []
    # C = 8: T = 0.2: (5.4, 5.4) -> pixel (5, 5), (5.6, 5.0) -> (6, 5), (5.0, 5.6) -> (5, 6) = 0: dropped.
    assert ppsm(points, sim, count=8, k=2.0).tolist() == points[:2].tolist()
    assert ppsm(points, sim, count=8, k=2.0).dtype == np.float32


def test_ppsm_gated_low_counts_take_the_best_of_the_boxes_maxima():
    sim = np.zeros((20, 30), np.float32)
    sim[2, 3] = 0.6
    sim[15, 25] = 0.7
    sim[10, 10] = 0.9  # outside every box
    boxes = np.array([[0, 0, 5, 5], [20, 10, 29, 19]], np.float32)
    for count in (0.5, 1.0, math.sqrt(2)):
        assert ppsm(np.zeros((0, 2)), sim, count=count, gate_boxes=boxes).tolist() == [[25, 15]]
    assert ppsm(np.zeros((0, 2)), sim, count=1.0, gate_boxes=boxes[:1]).tolist() == [[3, 2]]
    assert ppsm(np.zeros((0, 2)), sim, count=1.0).tolist() == [[10, 10]]
    # min_count: just below it nothing is selected, at it the C <= 1 rule applies.
    assert ppsm(np.zeros((0, 2)), sim, count=0.49).shape == (0, 2)
    assert ppsm(np.zeros((0, 2)), sim, count=0.3, min_count=0.3).tolist() == [[10, 10]]
    # The C <= k rule follows k: with k = 3, C = 2.9 still selects only P_max.
    points = np.array([[3, 2]], np.float32)
    assert ppsm(points, sim, count=2.9, k=3.0).tolist() == [[10, 10]]
    assert ppsm(points, sim, count=3.1, k=3.0).tolist() == []  # T = 0.9 * 3 / 3.1 = 0.87 > 0.6


def test_ppsm_gating_and_the_threshold_both_apply_and_empty_answers_are_float32_pairs():
    sim = np.zeros((20, 30), np.float32)
    sim[0, 0] = 1.0
    sim[5, 5] = 0.5
    sim[5, 20] = 0.01  # inside the box but below T = 1 / (10 / 2) = 0.2
    points = np.array([[5, 5], [20, 5]], np.float64)
    boxes = np.array([[0, 0, 25, 10]])
    kept = ppsm(points, sim, count=10, gate_boxes=boxes, k=2.0)
    assert kept.tolist() == [[5, 5]] and kept.dtype == np.float32
    for out in (ppsm(points, sim, count=0.1), ppsm(points, sim, count=10, gate_boxes=np.zeros((0, 4))),
                ppsm(np.zeros((0, 2)), sim, count=10)):
        assert out.shape == (0, 2) and out.dtype == np.float32
