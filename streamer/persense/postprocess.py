"""Decoder output -> de-duplicated instances, at a cost in proportion to the objects' areas.

Masks are chosen, boxed and de-duplicated on the decoder's low-resolution grid; only the masks that
survive are scaled to the frame, and only inside their boxes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engines.interfaces import DecoderOutput
from streamer.types import Instance


def best_masks(output: DecoderOutput) -> tuple[np.ndarray, np.ndarray]:
    """-> (logits float32[N, h, w], scores float32[N]): each prompt's highest-scoring candidate mask."""
    n = output.scores.shape[0]
    if n == 0:
        return output.logits.reshape(0, *output.logits.shape[-2:]), np.zeros(0, np.float32)
    best = np.argmax(output.scores, axis=1)
    rows = np.arange(n)
    return output.logits[rows, best], output.scores[rows, best].astype(np.float32)


def _lowres_boxes(binary: np.ndarray) -> np.ndarray:
    """bool[N, h, w] -> int[N, 4] (x0, y0, x1, y1) exclusive boxes; empty masks get x1 == x0."""
    n = binary.shape[0]
    boxes = np.zeros((n, 4), np.int64)
    if n == 0:
        return boxes
    rows = binary.any(axis=2)
    cols = binary.any(axis=1)
    has = rows.any(axis=1)
    boxes[:, 1] = np.argmax(rows, axis=1)
    boxes[:, 3] = rows.shape[1] - np.argmax(rows[:, ::-1], axis=1)
    boxes[:, 0] = np.argmax(cols, axis=1)
    boxes[:, 2] = cols.shape[1] - np.argmax(cols[:, ::-1], axis=1)
    boxes[~has] = 0
    return boxes


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float[N, 4], float[M, 4] (x0, y0, x1, y1) -> float[N, M] IoU."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def suppress_duplicates(binary: np.ndarray, boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy mask NMS on the low-resolution grid, boxes first.

    Args:
        binary: bool[N, h, w] masks; boxes: int[N, 4] their boxes; scores: float[N].
        iou: masks with IoU above this are the same object; the higher score is kept.

    Returns:
        int[K] indices of the kept masks, best score first.
    """
    order = np.argsort(-scores, kind="stable")
    order = order[(boxes[order, 2] > boxes[order, 0]) & (boxes[order, 3] > boxes[order, 1])]
    if len(order) == 0:
        return order
    areas = binary.reshape(len(binary), -1).sum(axis=1)
    # Only masks whose boxes intersect can overlap; the box test prunes almost every pair in a dense frame.
    overlapping = box_iou_matrix(boxes[order], boxes[order]) > 0
    kept: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for rank, i in enumerate(order):
        if suppressed[rank]:
            continue
        kept.append(int(i))
        later = np.nonzero(overlapping[rank, rank + 1 :])[0] + rank + 1
        for other_rank in later:
            if suppressed[other_rank]:
                continue
            j = order[other_rank]
            x0 = max(boxes[i, 0], boxes[j, 0])
            y0 = max(boxes[i, 1], boxes[j, 1])
            x1 = min(boxes[i, 2], boxes[j, 2])
            y1 = min(boxes[i, 3], boxes[j, 3])
            inter = np.count_nonzero(binary[i, y0:y1, x0:x1] & binary[j, y0:y1, x0:x1])
            union = areas[i] + areas[j] - inter
            if union > 0 and inter / union > iou:
                suppressed[other_rank] = True
    return np.asarray(kept, np.int64)


def upsample_in_box(
    logits: np.ndarray,
    lowres_box: np.ndarray,
    valid_hw: tuple[float, float],
    frame_hw: tuple[int, int],
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Scale one low-resolution mask to the frame, computing only the pixels inside its box.

    The values equal those of a bilinear resize of the whole valid grid to the frame (half-pixel centres,
    as cv2.resize and torch's align_corners=False), thresholded at 0.

    Args:
        logits: float32[h, w] one mask's logits; lowres_box: (x0, y0, x1, y1) its cells with logit > 0.
        valid_hw: the part of the grid covering the frame (may be fractional).
        frame_hw: (H, W).

    Returns:
        ((x0, y0, x1, y1) frame box, x1/y1 exclusive, bool[y1 - y0, x1 - x0] mask).
    """
    frame_h, frame_w = frame_hw
    sy, sx = valid_hw[0] / frame_h, valid_hw[1] / frame_w
    # Frame pixels whose sampling position falls within one cell of the low-res box.
    fx0 = max(int(math.floor((lowres_box[0] - 1 + 0.5) / sx - 0.5)), 0)
    fy0 = max(int(math.floor((lowres_box[1] - 1 + 0.5) / sy - 0.5)), 0)
    fx1 = min(int(math.ceil((lowres_box[2] + 0.5) / sx - 0.5)) + 1, frame_w)
    fy1 = min(int(math.ceil((lowres_box[3] + 0.5) / sy - 0.5)) + 1, frame_h)
    if fx1 <= fx0 or fy1 <= fy0:
        return (fx0, fy0, fx0, fy0), np.zeros((0, 0), bool)
    # dst (u, v) inside the box -> src x = (u + fx0 + 0.5) * sx - 0.5, likewise y.
    matrix = np.array([[sx, 0, (fx0 + 0.5) * sx - 0.5], [0, sy, (fy0 + 0.5) * sy - 0.5]], np.float64)
    # Clamp at the valid region's edge as a full resize of the valid grid would.
    h_valid = min(int(math.ceil(valid_hw[0])), logits.shape[0])
    w_valid = min(int(math.ceil(valid_hw[1])), logits.shape[1])
    patch = cv2.warpAffine(
        np.ascontiguousarray(logits[:h_valid, :w_valid], dtype=np.float32),
        matrix,
        (fx1 - fx0, fy1 - fy0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return (fx0, fy0, fx1, fy1), patch > 0


def tighten(box: tuple[int, int, int, int], mask: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Shrink a box to the mask's extent. An empty mask returns a zero-size box."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (box[0], box[1], box[0], box[1]), mask[:0, :0]
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (box[0] + int(c0), box[1] + int(r0), box[0] + int(c1), box[1] + int(r1)), mask[r0:r1, c0:c1]


def instances_from_decoder(
    output: DecoderOutput,
    points_xy: np.ndarray,
    frame_hw: tuple[int, int],
    duplicate_iou: float = 0.5,
    min_score: float = 0.0,
    min_area: int = 4,
) -> list[Instance]:
    """Best mask per prompt -> low-res NMS -> kept masks scaled to the frame inside their boxes.

    Returns instances ordered by score (best first), ids 0..K-1.
    """
    logits, scores = best_masks(output)
    h_valid = min(int(math.ceil(output.valid_hw[0])), logits.shape[-2])
    w_valid = min(int(math.ceil(output.valid_hw[1])), logits.shape[-1])
    binary = logits[:, :h_valid, :w_valid] > 0
    boxes = _lowres_boxes(binary)
    candidates = scores >= min_score
    boxes[~candidates] = 0
    kept = suppress_duplicates(binary, boxes, scores, duplicate_iou)

    instances: list[Instance] = []
    for i in kept:
        box, mask = upsample_in_box(logits[i], boxes[i], output.valid_hw, frame_hw)
        box, mask = tighten(box, mask)
        if mask.size == 0 or np.count_nonzero(mask) < max(min_area, 1):
            continue
        point = tuple(float(v) for v in points_xy[i])
        instances.append(Instance(id=len(instances), score=float(scores[i]), bbox=box, mask=mask, point=point))
    return instances
