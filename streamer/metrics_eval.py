"""Quality metrics against ground truth: union IoU (the paper's mIoU is computed on union masks), instance
matching at an IoU threshold (precision, recall, F1), count error and distractor hits.

Predicted instances are `streamer.types.Instance` (box-cropped masks); ground truth is an instance label
map (0 background, 1..K objects), as the simulator and COCO-style datasets provide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from streamer.types import Instance, SegmentationResult


@dataclass
class InstanceMatch:
    """One-to-one matching of predictions to ground-truth objects at IoU > threshold."""

    true_positives: int
    false_positives: int
    false_negatives: int
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        n = self.true_positives + self.false_positives
        return self.true_positives / n if n else 1.0

    @property
    def recall(self) -> float:
        n = self.true_positives + self.false_negatives
        return self.true_positives / n if n else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def union_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """bool[H, W] x bool[H, W] -> IoU; two empty masks agree perfectly (1.0)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    union = np.count_nonzero(pred | truth)
    return np.count_nonzero(pred & truth) / union if union else 1.0


def consecutive_labels(labels: np.ndarray) -> np.ndarray:
    """An instance label map with its objects renumbered 1..K (background stays 0)."""
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0 or ids[-1] == len(ids):
        return labels
    lut_values = np.searchsorted(ids, labels) + 1
    return np.where(labels > 0, lut_values, 0).astype(np.int32)


def iou_matrix(instances: list[Instance], labels: np.ndarray) -> np.ndarray:
    """float64[P, K]: IoU of each predicted instance with each ground-truth object (labels 1..K).

    Costs each prediction's box area, not the frame's.
    """
    labels = consecutive_labels(labels)
    k = int(labels.max()) if labels.size else 0
    truth_area = np.bincount(labels.ravel(), minlength=k + 1)[1:].astype(np.float64)
    ious = np.zeros((len(instances), k), np.float64)
    for p, inst in enumerate(instances):
        x0, y0, x1, y1 = inst.bbox
        inside = labels[y0:y1, x0:x1][inst.mask]
        inter = np.bincount(inside, minlength=k + 1)[1:].astype(np.float64)
        area = float(np.count_nonzero(inst.mask))
        union = area + truth_area - inter
        ious[p] = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    return ious


def match_instances(instances: list[Instance], labels: np.ndarray, threshold: float = 0.5) -> InstanceMatch:
    """Greedy one-to-one matching by descending IoU, pairs with IoU > threshold only."""
    ious = iou_matrix(instances, labels)
    p, k = ious.shape
    pairs = np.argwhere(ious > threshold)
    order = np.argsort(-ious[pairs[:, 0], pairs[:, 1]], kind="stable") if len(pairs) else []
    used_p, used_k, matched = set(), set(), []
    for idx in order:
        i, j = pairs[idx]
        if i in used_p or j in used_k:
            continue
        used_p.add(i)
        used_k.add(j)
        matched.append(ious[i, j])
    tp = len(matched)
    return InstanceMatch(tp, p - tp, k - tp, float(np.mean(matched)) if matched else 0.0)


def distractor_hits(instances: list[Instance], distractors: np.ndarray, fraction: float = 0.5) -> int:
    """How many predicted instances lie mostly (> fraction of their pixels) on distractor pixels."""
    hits = 0
    for inst in instances:
        x0, y0, x1, y1 = inst.bbox
        area = np.count_nonzero(inst.mask)
        if area and np.count_nonzero(distractors[y0:y1, x0:x1][inst.mask]) > fraction * area:
            hits += 1
    return hits


@dataclass
class FrameQuality:
    true_count: int
    count: int
    count_error: float  # |count - true| / max(true, 1)
    union_iou: float
    precision: float
    recall: float
    f1: float
    mean_matched_iou: float
    distractor_hits: int

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(result: SegmentationResult, labels: np.ndarray, distractors: np.ndarray | None = None) -> FrameQuality:
    """A pipeline result against an instance label map (and the distractor pixels, when known)."""
    labels = np.asarray(labels)
    true_count = int(len(np.unique(labels[labels > 0])))
    match = match_instances(result.instances, labels)
    return FrameQuality(
        true_count=true_count,
        count=result.count,
        count_error=abs(result.count - true_count) / max(true_count, 1),
        union_iou=union_iou(result.union_mask(), labels > 0),
        precision=match.precision,
        recall=match.recall,
        f1=match.f1,
        mean_matched_iou=match.mean_matched_iou,
        distractor_hits=distractor_hits(result.instances, distractors) if distractors is not None else 0,
    )
