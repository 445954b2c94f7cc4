"""A click's mask that follows the item's own outline, whatever its shape.

The outline engines answer a point prompt with a star-convex mask around the click: right for round items, but a
round blob in the middle of a rod, a bracket's corner, one facet of a chrome cap or a piece of a washer's ring
(the category development set's clicks: IoU 0.14-0.40 on rods, brackets and washers). That blob is a sure sample
of the item's look: GrabCut (OpenCV's iterated graph cut on colour models, Rother et al. 2004) takes it as the
foreground's seed and the surroundings as the background's, and the connected part holding the click is the item.

Items of one colour that touch (a pile of biscuits, the simulator's ellipses side by side) are one region for
GrabCut's colours. Which mask is the item is then told by the frame: GrabCut's colour models find every region of
the item's colours in the frame, and the mask whose shape recurs among them more often (the whole rod among the
frame's rods, the single biscuit among the biscuits lying apart, not the pile) is the answer. Where too few of
them tell (a frame of piles), a round blob inside an outline pinched in several places is one of a pile.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from engines.anyshape.shape import ShapeTolerance, shape_distance, shape_stats

# The window the item may extend over: this many radii of the click's blob beyond it on every side (its edge is
# taken as sure background). A blob is about as wide as the item's narrowest part: a 6:1 rod clicked at its
# middle reaches 6 radii out, a washer clicked on its ring about 10 (the ring is a fifth of its diameter).
_REACH = 12.0
# GrabCut's rounds of re-estimating the colour models (4: every category development scene's mask had settled).
_ROUNDS = 4
# GrabCut's item and the blob nearly alike (a round item): the item, with no need to ask the frame.
_SAME_MASK = 0.8
# The blob is the item where its shape recurs this many times as often as GrabCut's mask's. Measured on the
# category development set's clicks (regions like GrabCut's mask, like the blob, at shape distance 1.0): piles of
# biscuits 2-10, 2-8, 1-11, 1-12, 3-6 (the blob is the biscuit); lentils 115-162, 73-77 and a washer 3-4 (GrabCut's
# mask is the item). Unchanged at _ALIKE's 0.6 (every development scene's click IoU the same).
_CLEARLY_MORE = 1.5
# ... and in at least this many regions (an L bracket's corner blob recurring once, its whole never: too few to
# tell; the piles' single biscuits recur 6-12 times).
_FEW = 3
# Where the blob recurs fewer times: GrabCut's mask is a pile when it has this many pinches and this many times
# the blob's area (the simulator's touching ellipses: 2-4 pinches).
_PINCHES = 2
_PILE_AREA = 1.8
_PINCH_DEPTH = 0.4
# The grid the frame's regions of the item's colours are measured on (cells at most: 320 x 240).
_RECURRENCE_CELLS = 76_800
# Regions with the same shape: within the any-shape engines' default tolerance.
_TOLERANCE = ShapeTolerance()
# A region has the mask's shape below this shape distance (stricter than the engines' 1.0: the simulator's
# elongated ellipses in piles of 2-3 passed for single ones at 1.0, click IoU 0.74; 0.6 0.91, the category
# development set unchanged; 0.4 0.46).
_ALIKE = 0.6
# The blob's core, this share of its radius in from its outline, is sure foreground (the rest only probable:
# a blob can spill a little over the item's edge).
_CORE = 0.5


def follow_outline(image_rgb: np.ndarray, blob: np.ndarray, point_xy: tuple[float, float]) -> np.ndarray:
    """uint8[H, W, 3] RGB, bool[H, W] the blob a point prompt gave at (x, y) -> bool[H, W] the item's mask:
    the connected part of GrabCut's foreground that holds the click, unless the blob's shape recurs more often
    in the frame (then the blob). The blob itself where GrabCut finds nothing at the click (or cannot run: a
    blob with no background around it)."""
    h, w = blob.shape
    x, y = int(np.clip(point_xy[0], 0, w - 1)), int(np.clip(point_xy[1], 0, h - 1))
    ys, xs = np.nonzero(blob)
    if len(ys) == 0:
        return blob
    radius = max(float(np.sqrt(len(ys) / np.pi)), 3.0)
    reach = int(_REACH * radius)
    y0, y1 = max(0, min(int(ys.min()), y) - reach), min(h, max(int(ys.max()), y) + reach + 1)
    x0, x1 = max(0, min(int(xs.min()), x) - reach), min(w, max(int(xs.max()), x) + reach + 1)
    seed = blob[y0:y1, x0:x1]
    marks = np.full(seed.shape, cv2.GC_PR_BGD, np.uint8)
    marks[seed] = cv2.GC_PR_FGD
    size = max(3, int(2 * _CORE * radius) | 1)
    core = cv2.erode(seed.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0
    core[y - y0, x - x0] = True
    marks[core] = cv2.GC_FGD
    # The window's edges are background, except where the window is cut by the image's own edge.
    if y0 > 0:
        marks[0, :] = cv2.GC_BGD
    if y1 < h:
        marks[-1, :] = cv2.GC_BGD
    if x0 > 0:
        marks[:, 0] = cv2.GC_BGD
    if x1 < w:
        marks[:, -1] = cv2.GC_BGD
    if not np.isin(marks, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        return blob
    window = np.ascontiguousarray(image_rgb[y0:y1, x0:x1, ::-1])  # GrabCut's colour models work on BGR
    models = (np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64))
    try:
        cv2.grabCut(window, marks, None, models[0], models[1], _ROUNDS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return blob
    parts, _ = ndimage.label((marks == cv2.GC_FGD) | (marks == cv2.GC_PR_FGD))
    part = parts[y - y0, x - x0]
    if part == 0:
        return blob
    item = np.zeros_like(blob)
    item[y0:y1, x0:x1] = parts == part
    if _iou(item, blob) >= _SAME_MASK:
        return item
    found = recurrences(image_rgb, models, (item, blob))
    if found[1] >= _FEW:
        return blob if found[1] > _CLEARLY_MORE * found[0] else item
    # Too few regions to tell. Where the blob's shape recurs and the whole's never, an outline pinched in several
    # places and several times the blob's area is a pile of such blobs.
    if found[1] == 0 or found[0] > 0:
        return item
    return blob if _pinches(item, radius) >= _PINCHES and np.count_nonzero(item) >= _PILE_AREA * len(ys) else item


def _pinches(mask: np.ndarray, radius: float) -> int:
    """How many of the mask's outline's concavities are deeper than _PINCH_DEPTH blob radii (the necks where
    round items of a pile meet: two for a pair)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0
    outline = max(contours, key=cv2.contourArea)
    if len(outline) < 4:
        return 0
    try:
        defects = cv2.convexityDefects(outline, cv2.convexHull(outline, returnPoints=False))
    except cv2.error:  # a self-touching outline
        return 0
    if defects is None:
        return 0
    return int(np.count_nonzero(defects.reshape(-1, 4)[:, 3] / 256.0 > _PINCH_DEPTH * radius))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b)) / max(float(np.count_nonzero(a | b)), 1.0)


def recurrences(image_rgb: np.ndarray, models: tuple[np.ndarray, np.ndarray], masks: tuple[np.ndarray, ...]) -> list[int]:
    """How many of the frame's regions of the item's colours (GrabCut's (background, foreground) colour models)
    have each mask's shape (bool[H, W] masks; measured on a grid of at most _RECURRENCE_CELLS cells)."""
    h, w = image_rgb.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / _RECURRENCE_CELLS))))
    size = (-(-w // step), -(-h // step))
    small = cv2.resize(image_rgb[..., ::-1], size, interpolation=cv2.INTER_AREA).reshape(-1, 3).astype(np.float64)
    item_like = (_log_likelihood(small, models[1]) > _log_likelihood(small, models[0])).reshape(size[1], size[0])
    item_like = cv2.morphologyEx(item_like.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    regions, _ = ndimage.label(item_like)
    shapes = [shape_stats(cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0) for m in masks]
    counts = [0] * len(masks)
    for slices in ndimage.find_objects(regions):
        if slices is None:
            continue
        region = regions[slices] > 0
        area = float(np.count_nonzero(region))
        stats = None  # measured once a region, where a mask's area is near its own
        for k, shape in enumerate(shapes):
            if shape.area > 0 and 0.5 * shape.area <= area <= 2.0 * shape.area:
                if stats is None:
                    stats = shape_stats(region)
                if shape_distance(stats, shape, _TOLERANCE) < _ALIKE:
                    counts[k] += 1
    return counts


def _log_likelihood(colours: np.ndarray, model: np.ndarray) -> np.ndarray:
    """float64[N, 3] BGR colours -> float64[N] log-likelihood under one of GrabCut's Gaussian mixtures (its
    float64[1, 65] model: 5 weights, 5 means of 3, 5 covariances of 3 x 3, OpenCV's layout)."""
    flat = model.ravel()
    weights, means, covariances = flat[:5], flat[5:20].reshape(5, 3), flat[20:65].reshape(5, 3, 3)
    total = np.full(len(colours), -np.inf)
    for weight, mean, covariance in zip(weights, means, covariances):
        if weight <= 0:
            continue
        covariance = covariance + 1e-3 * np.eye(3)
        offset = colours - mean
        mahalanobis = np.einsum("ni,ij,nj->n", offset, np.linalg.inv(covariance), offset)
        component = np.log(weight) - 0.5 * (mahalanobis + np.log(np.linalg.det(covariance)) + 3 * np.log(2 * np.pi))
        total = np.logaddexp(total, component)
    return total


def label_map_at(labels: np.ndarray, valid_hw: tuple[float, float], frame_hw: tuple[int, int]) -> np.ndarray:
    """int32[h, w] a decoder's label grid whose top-left (vh, vw) part covers the frame -> int32[H, W] the label
    at each frame pixel's centre (nearest cell)."""
    fh, fw = frame_hw
    vh, vw = valid_hw
    gy = np.clip(((np.arange(fh) + 0.5) * vh / fh).astype(np.int64), 0, labels.shape[0] - 1)
    gx = np.clip(((np.arange(fw) + 0.5) * vw / fw).astype(np.int64), 0, labels.shape[1] - 1)
    return labels[np.ix_(gy, gx)]
