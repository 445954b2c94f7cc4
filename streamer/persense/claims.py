"""Which product keeps an object that several products of one camera found (docs/products.md, "The claim rule").

Every object a product finds is compared with every product's prototype (the median cosine similarity of its
pixels, streamer.persense.negatives.prototype_matches):

1. An object that matches another product's prototype better than its own product's is not counted for its
   product (the other products of the camera are its negative examples). Where that other product found the object
   too, it keeps it there; otherwise the object was not found as the product it looks like, and nobody counts it.
2. Where two products still both keep one object (their masks overlap by IoU > CLAIM_IOU), the product whose
   prototype the two masks match better (the sum over both masks) keeps it; the tie goes to the product listed
   first.

Each drop is counted in the losing product's figures as `claimed_by_other`.

Measured on the simulator's products mix (docs/products.md; `python -m streamer.products_eval --clean-examples`
with and without `--no-claims`, 40 frames): with examples uploaded alone on a plain belt, each product's engines
also found the other kinds (precision without the rule: tile 0.47, soap 0.28); with it 0.98 and 0.97, recall
unchanged. With examples picked on the running belt among the other kinds, the engines learnt the others as
background, and the rule changed nothing (the same figures with and without it).
"""

from __future__ import annotations

import numpy as np

from streamer.types import Instance

CLAIM_IOU = 0.5  # the pipeline's own duplicate rule (PipelineConfig.duplicate_iou's default): one object


def mask_iou(a: Instance, b: Instance) -> float:
    """IoU of two instances' box-cropped masks, in frame pixels."""
    x0, y0 = max(a.bbox[0], b.bbox[0]), max(a.bbox[1], b.bbox[1])
    x1, y1 = min(a.bbox[2], b.bbox[2]), min(a.bbox[3], b.bbox[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    crop_a = a.mask[y0 - a.bbox[1]:y1 - a.bbox[1], x0 - a.bbox[0]:x1 - a.bbox[0]]
    crop_b = b.mask[y0 - b.bbox[1]:y1 - b.bbox[1], x0 - b.bbox[0]:x1 - b.bbox[0]]
    inter = int(np.count_nonzero(crop_a & crop_b))
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def resolve_claims(instances: list[list[Instance]], matches: list[np.ndarray],
                   threshold: float = CLAIM_IOU) -> list[np.ndarray]:
    """Per product, which of its instances it keeps.

    Args:
        instances: per product p, its instances.
        matches: per product p, float[N_p, P]: each of its instances' match with every product's prototype
            (column q: product q's), in the products' order.
        threshold: masks of two products overlapping by more than this IoU are one object.

    Returns:
        per product, bool[N_p]: True where it keeps the instance.
    """
    # Rule 1: its own product's prototype matches it at least as well as any other's.
    keep = [m[:, p] >= m.max(axis=1) if len(m) else np.zeros(0, bool) for p, m in enumerate(matches)]
    boxes = [np.array([i.bbox for i in found], np.float64).reshape(-1, 4) for found in instances]
    for p in range(len(instances)):
        for q in range(p + 1, len(instances)):
            if not keep[p].any() or not keep[q].any():
                continue
            # Rule 2, on the objects both still keep whose boxes overlap at all.
            bp, bq = boxes[p][:, None, :], boxes[q][None, :, :]
            touching = (np.minimum(bp[..., 2], bq[..., 2]) > np.maximum(bp[..., 0], bq[..., 0])) & \
                       (np.minimum(bp[..., 3], bq[..., 3]) > np.maximum(bp[..., 1], bq[..., 1]))
            touching &= keep[p][:, None] & keep[q][None, :]
            for a, b in zip(*np.nonzero(touching)):
                if not (keep[p][a] and keep[q][b]) or mask_iou(instances[p][a], instances[q][b]) <= threshold:
                    continue
                for_p = matches[p][a, p] + matches[q][b, p]
                for_q = matches[p][a, q] + matches[q][b, q]
                if for_p >= for_q:
                    keep[q][b] = False
                else:
                    keep[p][a] = False
    return keep
