"""Decoder output -> de-duplicated instances, at a cost in proportion to the objects' areas.

Each prompt's mask is chosen, boxed and de-duplicated on the decoder's low-resolution grid, keeping only a
small patch around its box; only the masks that survive are scaled to the frame, and only inside their boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from engines.interfaces import DecoderOutput
from streamer.types import Instance


@dataclass
class LowResMask:
    """One prompt's chosen mask on the low-res grid.

    box: (x0, y0, x1, y1) cells with the object, x1/y1 exclusive.
    patch: float32 values (> 0 is the object) over `patch_box`, the box grown by one cell (clipped to the valid
        grid) so that bilinear upsampling near the border sees the true neighbours.
    """

    index: int
    score: float
    box: tuple[int, int, int, int]
    patch_box: tuple[int, int, int, int]
    patch: np.ndarray

    def binary(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        px0, py0 = self.patch_box[:2]
        return self.patch[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0] > 0


def _grow(box, h, w):
    x0, y0, x1, y1 = box
    return (max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h))


def _valid_grid(output: DecoderOutput) -> tuple[int, int]:
    gh, gw = output.grid_hw
    return min(int(math.ceil(output.valid_hw[0])), gh), min(int(math.ceil(output.valid_hw[1])), gw)


def lowres_masks(output: DecoderOutput, min_score: float = 0.0) -> list[LowResMask]:
    """The best-scoring candidate of each prompt, boxed on the low-res grid; empty masks are left out."""
    h, w = _valid_grid(output)
    scores = np.asarray(output.scores, np.float32).reshape(output.scores.shape[0], -1)
    best = np.argmax(scores, axis=1) if scores.shape[1] else np.zeros(len(scores), int)
    masks = []
    if output.labels is not None:
        labels = output.labels[:h, :w]
        for i, slices in enumerate(ndimage.find_objects(labels, max_label=len(scores))):
            if slices is None or scores[i, 0] < min_score:
                continue
            box = (slices[1].start, slices[0].start, slices[1].stop, slices[0].stop)
            pb = _grow(box, h, w)
            patch = np.where(labels[pb[1] : pb[3], pb[0] : pb[2]] == i + 1, 1.0, -1.0).astype(np.float32)
            masks.append(LowResMask(i, float(scores[i, 0]), box, pb, patch))
        return masks
    for i in range(len(scores)):
        score = float(scores[i, best[i]])
        if score < min_score:
            continue
        grid = output.logits[i, best[i], :h, :w]  # a view: no copy of the N x K x h x w block
        x0, y0, bw, bh = cv2.boundingRect((grid > 0).view(np.uint8))
        if bw == 0 or bh == 0:
            continue
        x1, y1 = x0 + bw, y0 + bh
        box = (x0, y0, x1, y1)
        pb = _grow(box, h, w)
        masks.append(LowResMask(i, score, box, pb, np.array(grid[pb[1] : pb[3], pb[0] : pb[2]], np.float32)))
    return masks


def duplicate_candidates(boxes: np.ndarray, areas: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, of masks that could overlap by more than `iou`, ordered by i then j.

    Mask IoU <= (box intersection) / max(area_i, area_j), so pairs whose boxes overlap too little are never
    pixel-tested. Boxes are swept in x order, so the work grows with the pairs that overlap in x, not N^2.

    Args:
        boxes: int[N, 4] (x0, y0, x1, y1); areas: int[N] mask areas (cells).
    """
    n = len(boxes)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(boxes[:, 0], kind="stable")
    x0_sorted = boxes[order, 0]
    # For the k-th box in x order, boxes k+1 .. reach[k]-1 start before it ends: they overlap it in x.
    reach = np.searchsorted(x0_sorted, boxes[order, 2], side="left")
    spans = np.maximum(reach - np.arange(n) - 1, 0)
    a = np.repeat(np.arange(n), spans)
    b = a + 1 + (np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans))
    i, j = order[a], order[b]
    ix = np.minimum(boxes[i, 2], boxes[j, 2]) - np.maximum(boxes[i, 0], boxes[j, 0])
    iy = np.minimum(boxes[i, 3], boxes[j, 3]) - np.maximum(boxes[i, 1], boxes[j, 1])
    bound = np.clip(ix, 0, None) * np.clip(iy, 0, None) / np.maximum(np.maximum(areas[i], areas[j]), 1)
    keep = bound > iou
    first, second = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    rank = np.lexsort((second, first))
    return first[rank], second[rank]


def _mask_iou(a: LowResMask, b: LowResMask, bin_a: np.ndarray, bin_b: np.ndarray, area_a: int, area_b: int) -> float:
    x0, y0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    x1, y1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    ma = bin_a[y0 - a.box[1] : y1 - a.box[1], x0 - a.box[0] : x1 - a.box[0]]
    mb = bin_b[y0 - b.box[1] : y1 - b.box[1], x0 - b.box[0] : x1 - b.box[0]]
    inter = int(np.count_nonzero(ma & mb))
    union = area_a + area_b - inter
    return inter / union if union else 0.0


def suppress_duplicates(masks: list[LowResMask], iou: float) -> list[LowResMask]:
    """Greedy mask NMS on the low-res grid, boxes first: the higher score of two masks with IoU > `iou` stays.

    Returns the kept masks, best score first.
    """
    if not masks:
        return []
    ranked = sorted(masks, key=lambda m: -m.score)
    binaries = [m.binary() for m in ranked]
    areas = np.array([np.count_nonzero(b) for b in binaries], np.int64)
    # Boxes before pixels: touching neighbours in a dense frame are pruned without a pixel test.
    first, second = duplicate_candidates(np.array([m.box for m in ranked], np.int64), areas, iou)
    suppressed = np.zeros(len(ranked), bool)
    for i, j in zip(first.tolist(), second.tolist()):
        # Greedy order holds: every pair that could suppress i (h < i) came before the pairs of i.
        if suppressed[i] or suppressed[j]:
            continue
        if _mask_iou(ranked[i], ranked[j], binaries[i], binaries[j], areas[i], areas[j]) > iou:
            suppressed[j] = True
    return [m for m, gone in zip(ranked, suppressed) if not gone]


def upsample_in_box(
    mask: LowResMask, valid_hw: tuple[float, float], frame_hw: tuple[int, int]
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Scale one low-res mask to the frame, computing only the pixels near its box.

    The values equal those of a bilinear resize of the whole valid grid to the frame (half-pixel centres, as
    cv2.resize and torch's align_corners=False), thresholded at 0.

    Returns:
        ((x0, y0, x1, y1) frame box, x1/y1 exclusive, bool[y1 - y0, x1 - x0] mask).
    """
    frame_h, frame_w = frame_hw
    sy, sx = valid_hw[0] / frame_h, valid_hw[1] / frame_w
    bx0, by0, bx1, by1 = mask.box
    # Frame pixels whose sampling position lies within one cell of the box can interpolate to a positive value.
    fx0 = max(int(math.floor((bx0 - 1 + 0.5) / sx - 0.5)), 0)
    fy0 = max(int(math.floor((by0 - 1 + 0.5) / sy - 0.5)), 0)
    fx1 = min(int(math.ceil((bx1 + 0.5) / sx - 0.5)) + 1, frame_w)
    fy1 = min(int(math.ceil((by1 + 0.5) / sy - 0.5)) + 1, frame_h)
    if fx1 <= fx0 or fy1 <= fy0:
        return (fx0, fy0, fx0, fy0), np.zeros((0, 0), bool)
    px0, py0 = mask.patch_box[:2]
    # dst (u, v) in the box -> grid x = (u + fx0 + 0.5) * sx - 0.5, then into patch coordinates.
    matrix = np.array(
        [[sx, 0, (fx0 + 0.5) * sx - 0.5 - px0], [0, sy, (fy0 + 0.5) * sy - 0.5 - py0]], np.float64
    )
    values = cv2.warpAffine(
        mask.patch,
        matrix,
        (fx1 - fx0, fy1 - fy0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        # At the valid grid's edge a full resize clamps; elsewhere the patch's margin is below zero anyway.
        borderMode=cv2.BORDER_REPLICATE,
    )
    return (fx0, fy0, fx1, fy1), values > 0


def tighten(box: tuple[int, int, int, int], mask: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Shrink a box to the mask's extent. An empty mask returns a zero-size box."""
    c0, r0, cw, rh = cv2.boundingRect(mask.view(np.uint8)) if mask.size else (0, 0, 0, 0)
    if cw == 0 or rh == 0:
        return (box[0], box[1], box[0], box[1]), mask[:0, :0]
    return (box[0] + c0, box[1] + r0, box[0] + c0 + cw, box[1] + r0 + rh), mask[r0 : r0 + rh, c0 : c0 + cw]


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
    masks = lowres_masks(output, min_score)
    # A label map assigns each cell to one prompt: its masks cannot overlap, so only logits need suppression.
    if output.labels is not None:
        kept = sorted(masks, key=lambda m: -m.score)
    else:
        kept = suppress_duplicates(masks, duplicate_iou)
    instances: list[Instance] = []
    for low in kept:
        box, mask = tighten(*upsample_in_box(low, output.valid_hw, frame_hw))
        if mask.size == 0:
            continue
        point = (float(points_xy[low.index][0]), float(points_xy[low.index][1]))
        instance = Instance(id=len(instances), score=low.score, bbox=box, mask=mask, point=point)
        if instance.area >= max(min_area, 1):
            instances.append(instance)
    return instances
