"""PPSM (PerSense Algorithm 2, Eq. 5): T_adapt = S_max / (C / k), strict >, box gating."""

import math

import numpy as np

from streamer.persense import ppsm
from streamer.persense.ppsm import adaptive_threshold


def similarity_with(values_at):
    sim = np.zeros((50, 100), np.float32)
    for (x, y), v in values_at.items():
        sim[y, x] = v
    return sim


def test_threshold_is_eq5():
    assert adaptive_threshold(0.9, 10, math.sqrt(2)) == 0.9 / (10 / math.sqrt(2))
    assert math.isclose(adaptive_threshold(1.0, 2, math.sqrt(2)), math.sqrt(2) / 2)


def test_points_strictly_above_the_adaptive_threshold_are_kept():
    t = 1.0 / (10 / math.sqrt(2))  # 0.1414...
    sim = similarity_with({(1, 1): 1.0, (10, 10): t + 1e-3, (20, 10): t - 1e-3, (30, 10): np.float32(t)})
    points = np.array([[10, 10], [20, 10], [30, 10], [1, 1]], np.float32)
    kept = ppsm(points, sim, count=10)
    # The point exactly at T (as float32) is not kept unless float32 rounding put it above T.
    expected = [[10, 10], [1, 1]] + ([[30, 10]] if np.float32(t) > t else [])
    assert sorted(map(tuple, kept.tolist())) == sorted(map(tuple, expected))


def test_a_denser_scene_lowers_the_threshold():
    sim = similarity_with({(1, 1): 1.0, (10, 10): 0.2})
    points = np.array([[10, 10]], np.float32)
    assert len(ppsm(points, sim, count=5)) == 0  # T = 0.283
    assert len(ppsm(points, sim, count=50)) == 1  # T = 0.028


def test_k_is_configurable():
    sim = similarity_with({(1, 1): 1.0, (10, 10): 0.15})
    points = np.array([[10, 10]], np.float32)
    assert len(ppsm(points, sim, count=10, k=1.0)) == 1  # T = 0.1
    assert len(ppsm(points, sim, count=10, k=2.0)) == 0  # T = 0.2


def test_box_gating_keeps_points_inside_at_least_one_box_edges_included():
    sim = np.ones((50, 100), np.float32)
    points = np.array([[5, 5], [40, 20], [60, 20], [90, 45]], np.float32)
    boxes = np.array([[0, 0, 40, 20], [80, 40, 95, 49]], np.float32)
    kept = ppsm(points, sim, count=20, gate_boxes=boxes)
    assert kept.tolist() == [[5, 5], [40, 20], [90, 45]]


def test_no_gate_boxes_means_no_gating_but_an_empty_box_list_rejects_all():
    sim = np.ones((50, 100), np.float32)
    points = np.array([[5, 5], [60, 20]], np.float32)
    assert len(ppsm(points, sim, count=20, gate_boxes=None)) == 2
    assert len(ppsm(points, sim, count=20, gate_boxes=np.zeros((0, 4)))) == 0


def test_count_of_one_selects_only_the_point_of_highest_similarity():
    sim = similarity_with({(70, 30): 0.9, (10, 10): 0.5})
    points = np.array([[10, 10], [20, 20]], np.float32)
    assert ppsm(points, sim, count=1.0).tolist() == [[70, 30]]
    # With gating, S_max is searched inside the gate boxes (Eq. 1's P_max in B_max).
    boxes = np.array([[0, 0, 30, 30]], np.float32)
    assert ppsm(points, sim, count=0.8, gate_boxes=boxes).tolist() == [[10, 10]]


def test_a_count_that_rounds_to_zero_selects_nothing():
    sim = similarity_with({(70, 30): 0.9})
    assert len(ppsm(np.array([[70, 30]], np.float32), sim, count=0.2)) == 0


def test_no_candidates_gives_an_empty_array():
    out = ppsm(np.zeros((0, 2), np.float32), np.ones((10, 10), np.float32), count=5)
    assert out.shape == (0, 2)


def test_counts_between_one_and_k_still_select_the_point_of_s_max():
    # T_adapt = S_max * k / C >= S_max for C <= k: Eq. 5 would keep nothing; the C = 1 rule applies instead.
    sim = similarity_with({(70, 30): 0.9, (10, 10): 0.85})
    points = np.array([[10, 10]], np.float32)
    for count in (1.2, 1.41):
        assert ppsm(points, sim, count=count).tolist() == [[70, 30]]
    # Just above k the adaptive threshold applies: 0.9 * 1.4142 / 1.5 = 0.8485 < 0.85 keeps the candidate.
    assert ppsm(points, sim, count=1.5).tolist() == [[10, 10]]


def test_top_points_start_at_p_max_and_keep_apart():
    from streamer.persense.ppsm import argmax_point, top_points

    sim = np.zeros((60, 80), np.float32)
    for (x, y), v in {(10, 10): 0.9, (14, 12): 0.85, (40, 30): 0.8, (70, 50): 0.7, (72, 52): 0.95}.items():
        sim[y, x] = v
    points = top_points(sim, 3, separation=10)
    assert points[0].tolist() == argmax_point(sim).tolist() == [72, 52]
    # (70, 50) is within 10 px of (72, 52), and (14, 12) of (10, 10): both are passed over.
    assert points[1:].tolist() == [[10, 10], [40, 30]]
    # Inside a box only, and never more than the map holds.
    assert top_points(sim, 5, 10, box=np.array([0, 0, 30, 30])).tolist()[:1] == [[10, 10]]
    assert len(top_points(np.zeros((4, 4), np.float32), 3, separation=100)) == 1

