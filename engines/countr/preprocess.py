"""CounTR's pre-processing, as its FSC-147 evaluation does it: frame resize, exemplar boxes and crops.

The frame is resized to height 384 and width 16 * floor(W / H * 384 / 16) ("model scale"); pixel values are
scaled to [0, 1] with no mean/std normalisation. Exemplar crops are cut from that resized image and resized to
64 x 64. When every exemplar is under 10 px on both sides at model scale, the frame is counted on a 3 x 3 tiling
instead, each tile enlarged to the full input (see `engines.countr.windows`).
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

log = logging.getLogger(__name__)

INPUT_SIZE = 384
EXEMPLAR_SIZE = 64
WIDTH_MULTIPLE = 16
# Exemplars smaller than this (px at model scale, on both sides) are too small for CounTR at 384 px height.
TINY_EXEMPLAR_PX = 10
TILES = 3
# CounTR's training targets are densities times 60: count = sum(density) / 60.
DENSITY_SCALE = 60.0
# CounTR was trained with 0 to 3 exemplars per image.
EXEMPLARS_PER_GROUP = 3


def model_width(frame_hw: tuple[int, int]) -> int:
    """The width CounTR sees a frame of (H, W) at, for height 384 (never below one 16-px column)."""
    h, w = frame_hw
    return max(WIDTH_MULTIPLE, WIDTH_MULTIPLE * math.floor(w / h * INPUT_SIZE / WIDTH_MULTIPLE))


def resize_rgb(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """uint8[H, W, 3] -> uint8[h, w, 3]; area averaging when shrinking (like an antialiased resize)."""
    h, w = size_hw
    if image.shape[:2] == (h, w):
        return image
    shrinking = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_chw_float(image: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3] -> float32[3, H, W] in [0, 1] (CounTR uses no mean/std normalisation)."""
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def clip_boxes(boxes: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """float[M, 4] (x0, y0, x1, y1) -> float32[K, 4] clipped to the frame; non-finite, inverted or empty boxes dropped."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    h, w = frame_hw
    keep = np.isfinite(boxes).all(axis=1)
    boxes = boxes[keep]
    boxes = np.stack(
        [np.clip(boxes[:, 0], 0, w), np.clip(boxes[:, 1], 0, h), np.clip(boxes[:, 2], 0, w), np.clip(boxes[:, 3], 0, h)],
        axis=1,
    )
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    return boxes.astype(np.float32)


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """float32[K, 4] -> the same boxes in an image scaled by (sx, sy)."""
    return (boxes * np.asarray([sx, sy, sx, sy], np.float32)).astype(np.float32)


def all_tiny(boxes_model: np.ndarray) -> bool:
    """True when every box (model-scale pixels) is under TINY_EXEMPLAR_PX on both sides."""
    if len(boxes_model) == 0:
        return False
    sizes = boxes_model[:, 2:] - boxes_model[:, :2]
    return bool(np.all(sizes < TINY_EXEMPLAR_PX))


def crop_exemplars(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3], float32[K, 4] boxes in its pixels -> float32[K, 3, 64, 64] in [0, 1].

    Boxes are widened to whole pixels (floor / ceil), at least one pixel, inside the image.
    """
    h, w = image.shape[:2]
    crops = np.zeros((len(boxes), 3, EXEMPLAR_SIZE, EXEMPLAR_SIZE), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        c0 = min(max(int(math.floor(x0)), 0), w - 1)
        r0 = min(max(int(math.floor(y0)), 0), h - 1)
        c1 = min(max(int(math.ceil(x1)), c0 + 1), w)
        r1 = min(max(int(math.ceil(y1)), r0 + 1), h)
        patch = resize_rgb(image[r0:r1, c0:c1], (EXEMPLAR_SIZE, EXEMPLAR_SIZE))
        crops[i] = to_chw_float(patch)
    return crops


def exemplar_groups(crops: np.ndarray) -> np.ndarray:
    """float32[K, 3, 64, 64], K >= 1 -> float32[G, S, 3, 64, 64], the exemplar sets CounTR is run with.

    CounTR takes up to three exemplars at a time. K <= 3: one group of all K (one box given once is the same to
    the model as the same box three times: identical keys share the attention equally). K > 3: ceil(K / 3) groups
    of three, filled cyclically in the given (best-first) order, so that every exemplar is used and the groups'
    densities are averaged: K = 4 -> {0, 1, 2} and {3, 0, 1}.
    """
    k = len(crops)
    if k == 0:
        raise ValueError("exemplar_groups needs at least one exemplar")
    if k <= EXEMPLARS_PER_GROUP:
        return crops[None]
    groups = math.ceil(k / EXEMPLARS_PER_GROUP)
    order = np.arange(groups * EXEMPLARS_PER_GROUP) % k
    return crops[order].reshape(groups, EXEMPLARS_PER_GROUP, *crops.shape[1:])
