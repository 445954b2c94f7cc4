"""streamer.metrics_eval: union IoU, one-to-one instance matching, distractor hits, on hand-made answers."""

import numpy as np

from streamer.metrics_eval import consecutive_labels, distractor_hits, evaluate, match_instances, union_iou
from streamer.types import Instance, SegmentationResult


def _instance(i, canvas):
    ys, xs = np.nonzero(canvas)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return Instance(id=i, score=1.0, bbox=(x0, y0, x1, y1), mask=canvas[y0:y1, x0:x1].copy())


def _truth():
    labels = np.zeros((20, 30), np.int32)
    labels[2:8, 2:8] = 1  # 36 px
    labels[2:8, 10:16] = 2  # 36 px
    labels[12:18, 20:26] = 3  # 36 px
    return labels


def test_union_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert union_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert union_iou(a, b) == 4 / 12


def test_matching_counts_true_and_false_positives():
    labels = _truth()
    exact = np.zeros_like(labels, bool)
    exact[2:8, 2:8] = True
    shifted = np.zeros_like(labels, bool)
    shifted[2:8, 12:18] = True  # IoU with object 2 = 24 / 48 = 0.5, not > 0.5
    stray = np.zeros_like(labels, bool)
    stray[15:18, 2:5] = True
    duplicate = exact.copy()
    match = match_instances([_instance(i, m) for i, m in enumerate([exact, shifted, stray, duplicate])], labels)
    assert (match.true_positives, match.false_positives, match.false_negatives) == (1, 3, 2)
    assert match.precision == 0.25 and match.recall == 1 / 3
    assert abs(match.f1 - 2 * 0.25 * (1 / 3) / (0.25 + 1 / 3)) < 1e-12
    assert match.mean_matched_iou == 1.0


def test_evaluate_and_distractor_hits():
    labels = _truth()
    distractors = np.zeros_like(labels, bool)
    distractors[12:18, 2:8] = True
    masks = []
    for k in (1, 2, 3):
        masks.append(labels == k)
    masks.append(distractors.copy())
    result = SegmentationResult(30, 20, [_instance(i, m) for i, m in enumerate(masks)])
    q = evaluate(result, labels, distractors)
    assert q.true_count == 3 and q.count == 4 and q.count_error == 1 / 3
    assert q.recall == 1.0 and q.precision == 0.75
    assert q.distractor_hits == 1 == distractor_hits(result.instances, distractors)
    assert q.union_iou == 108 / 144


def test_label_maps_with_gaps_are_renumbered():
    labels = _truth()
    labels[labels == 2] = 7
    assert np.array_equal(np.unique(consecutive_labels(labels)), [0, 1, 2, 3])
    match = match_instances([_instance(0, labels == 7)], labels)
    assert (match.true_positives, match.false_negatives) == (1, 2)
