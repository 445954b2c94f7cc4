"""Duplicate suppression against a brute-force greedy NMS: chains, cliques and random layouts.

The reference keeps masks in score order and drops one whose IoU with an already KEPT mask exceeds the
threshold; a suppressed mask suppresses nothing (in a chain A-B-C where only neighbours overlap, A and C stay).
"""

import numpy as np
import pytest

from engines.interfaces import DecoderOutput
from streamer.persense.postprocess import instances_from_decoder, lowres_masks, suppress_duplicates


def _output(masks, scores):
    logits = np.stack([np.where(m, 1.0, -1.0).astype(np.float32) for m in masks])[:, None]
    h, w = masks[0].shape
    return DecoderOutput(logits=logits, scores=np.asarray(scores, np.float32)[:, None], valid_hw=(h, w))


def _iou(a, b):
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def reference_nms(masks, scores, iou):
    """Indices kept by greedy NMS, best score first (brute force over full-size masks)."""
    kept = []
    for i in sorted(range(len(masks)), key=lambda k: -scores[k]):
        if not masks[i].any():
            continue
        if all(_iou(masks[i], masks[k]) <= iou for k in kept):
            kept.append(i)
    return kept


def _bar(shape, x0, x1, y0=2, y1=8):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _kept(masks, scores, iou=0.5):
    return [m.index for m in suppress_duplicates(lowres_masks(_output(masks, scores)), iou)]


def test_a_chain_keeps_its_ends_a_suppressed_mask_suppresses_nothing():
    shape = (10, 60)
    # Bars of width 10 shifted by 3: IoU(neighbours) = 7/13 > 0.5, IoU(two apart) = 4/16 < 0.5.
    masks = [_bar(shape, 3 * k, 3 * k + 10) for k in range(5)]
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert _kept(masks, scores) == reference_nms(masks, scores, 0.5) == [0, 2, 4]
    # Scores in the other direction: the chain is walked from the other end.
    assert _kept(masks, scores[::-1]) == reference_nms(masks, scores[::-1], 0.5) == [4, 2, 0]
    # Best in the middle: it suppresses both neighbours, and the ends survive.
    mid = [0.5, 0.8, 0.9, 0.7, 0.6]
    assert _kept(masks, mid) == reference_nms(masks, mid, 0.5) == [2, 4, 0]


def test_a_clique_keeps_only_its_best():
    shape = (10, 40)
    masks = [_bar(shape, 10 + k, 20 + k) for k in range(4)]  # every pair overlaps by >= 7/13
    scores = [0.3, 0.9, 0.5, 0.7]
    assert _kept(masks, scores) == reference_nms(masks, scores, 0.5) == [1]


def test_iou_exactly_at_the_threshold_is_not_a_duplicate():
    shape = (10, 40)
    a, b = _bar(shape, 0, 10), _bar(shape, 5, 15)  # IoU = 5 / 15 = 1/3
    assert _kept([a, b], [0.9, 0.8], iou=1 / 3) == [0, 1]
    assert _kept([a, b], [0.9, 0.8], iou=1 / 3 - 1e-6) == [0]


def test_masks_with_overlapping_boxes_but_few_shared_pixels_are_kept():
    shape = (20, 20)
    a = np.zeros(shape, bool)
    a[2:18, 2:4] = a[2:4, 2:18] = True  # an L
    b = np.zeros(shape, bool)
    b[16:18, 2:18] = b[2:18, 16:18] = True  # the other L: same box, four shared pixels
    assert _kept([a, b], [0.9, 0.8], iou=0.1) == [0, 1] == reference_nms([a, b], [0.9, 0.8], 0.1)


@pytest.mark.parametrize("seed", range(12))
def test_random_layouts_equal_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (24, 32)
    n = int(rng.integers(2, 14))
    masks = []
    for _ in range(n):
        x0, y0 = int(rng.integers(0, 26)), int(rng.integers(0, 18))
        w, h = int(rng.integers(2, 9)), int(rng.integers(2, 9))
        m = np.zeros(shape, bool)
        m[y0 : y0 + h, x0 : x0 + w] = rng.random((min(h, 24 - y0), min(w, 32 - x0))) < 0.8
        masks.append(m)
    scores = rng.permutation(n) / n + 0.01
    for iou in (0.2, 0.5):
        assert _kept(masks, scores, iou) == reference_nms(masks, scores, iou)


def test_instances_keep_the_nms_order_ids_points_and_scores():
    shape = (10, 60)
    masks = [_bar(shape, 3 * k, 3 * k + 10) for k in range(5)]
    scores = [0.6, 0.8, 0.7, 0.9, 0.5]
    points = np.array([[3 * k + 5, 5] for k in range(5)], np.float32)
    inst = instances_from_decoder(_output(masks, scores), points, shape, duplicate_iou=0.5, min_area=1)
    kept = reference_nms(masks, scores, 0.5)
    assert [i.point for i in inst] == [tuple(points[k].tolist()) for k in kept]
    assert [i.score for i in inst] == [pytest.approx(scores[k]) for k in kept]
    assert [i.id for i in inst] == list(range(len(kept)))
    for i, k in zip(inst, kept):
        full = np.zeros(shape, bool)
        i.paste(full)
        assert np.array_equal(full, masks[k])
