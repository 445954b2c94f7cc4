"""Objects from the classifier's probability map: product-like regions, touching items split by marker-controlled
watershed, every region kept only when it has the support's shape.

All on the classifier's grid (cells); `Regions` carries the answer to the density map generator (one point per
object, inside it: the deepest cell, so a ring's or a crescent's point is on the object, not in its hole) and to
the decoder (the label map: masks follow the outline whatever its shape, holes stay holes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from engines.anyshape.shape import ShapeStats, ShapeTolerance, shape_agreement, shape_stats

# Probability above which a cell is the product's.
_FOREGROUND = 0.3
# Watershed markers: distance-transform maxima standing this share of the support's inner radius above their
# surroundings (lower splits one object at its narrow waist, higher merges touching round items).
_MARKER_DEPTH = 0.3
# A clump's parts that still hold several objects are split again, with shallower markers, this many times
# (dense piles of items overlapping by up to 20% need three rounds: the category set's touching scenes).
_MAX_SPLITS = 3
# An object cut by the frame's edge is kept from this share of the support's area on (its shape is not judged).
_BORDER_MIN_AREA = 0.25


@dataclass
class Regions:
    """labels: int32[h, w], 0 background and k + 1 for object k; points: float32[N, 2] (x, y) cells, one inside
    each object; scores: float32[N] shape agreement in [0, 1]."""

    labels: np.ndarray
    points: np.ndarray
    scores: np.ndarray


def find_regions(probability: np.ndarray, support: ShapeStats, tolerance: ShapeTolerance | None = None) -> Regions:
    """float32[h, w] product probability and the support's shape (same grid) -> the objects."""
    tolerance = tolerance or ShapeTolerance()
    foreground = product_cells(probability)
    foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    if support.hole_fraction <= 0.02:
        # A support without holes: a highlight or a print inside an item is not a hole in it.
        foreground = ndimage.binary_fill_holes(foreground)
    components, count = ndimage.label(foreground)
    h, w = probability.shape
    kept: list[tuple[np.ndarray, tuple[slice, slice], float]] = []
    for index, slices in enumerate(ndimage.find_objects(components), start=1):
        if slices is None:
            continue
        crop = components[slices] == index
        area = float(crop.sum())
        if area < tolerance.min_area * support.area * 0.5:
            continue
        kept += _judge(crop, slices, (h, w), support, tolerance)
    return _as_regions(kept, (h, w))


def product_cells(probability: np.ndarray) -> np.ndarray:
    """float32[h, w] probability -> bool[h, w] the product's cells (smoothed first: the classifier decides cell
    by cell, and a ragged outline would fail the shape test)."""
    smooth = cv2.GaussianBlur(probability, (0, 0), 0.8)
    return smooth > _FOREGROUND


def _touches_border(slices: tuple[slice, slice], hw: tuple[int, int]) -> bool:
    ys, xs = slices
    return ys.start == 0 or xs.start == 0 or ys.stop == hw[0] or xs.stop == hw[1]


def _judge(crop: np.ndarray, slices: tuple[slice, slice], hw: tuple[int, int], support: ShapeStats,
           tolerance: ShapeTolerance, depth: int = 0) -> list[tuple[np.ndarray, tuple[slice, slice], float]]:
    """One connected product-like region -> the objects in it: itself when it has the support's shape, else
    its watershed parts that do (a part too large for one object is split again, up to _MAX_SPLITS rounds)."""
    area = float(crop.sum())
    if _touches_border(slices, hw):
        if _BORDER_MIN_AREA * support.area <= area <= tolerance.max_area * support.area:
            return [(crop, slices, 0.5)]
    else:
        # A watershed part's outline is cut straight where it touched its neighbours: judged on area and
        # elongation alone.
        judged = tolerance if depth == 0 else _split_part_tolerance(tolerance)
        score = shape_agreement(shape_stats(crop), support, judged)
        if score > 0:
            return [(crop, slices, score)]
    if depth >= _MAX_SPLITS or area < tolerance.max_area * support.area * 0.75:
        return []
    parts = []
    for part, part_slices in _split(crop, slices, support, _MARKER_DEPTH / (depth + 1)):
        parts += _judge(part, part_slices, hw, support, tolerance, depth + 1)
    return parts


def _split_part_tolerance(tolerance: ShapeTolerance) -> ShapeTolerance:
    return ShapeTolerance(tolerance.min_area, tolerance.max_area, tolerance.elongation, solidity=1.0,
                          hole_fraction=tolerance.hole_fraction, circle_fill=10.0)


def _split(crop: np.ndarray, slices: tuple[slice, slice], support: ShapeStats, marker_depth: float):
    """Marker-controlled watershed of a clump on its distance transform -> (part mask, part slices) pairs."""
    padded = np.pad(crop, 1).astype(np.uint8)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
    depth = max(marker_depth * support.inner_radius, 0.5)
    markers, n = ndimage.label(h_maxima(distance, depth))
    if n < 2:
        return []
    parts = watershed(-distance, markers, mask=padded > 0)[1:-1, 1:-1]
    y0, x0 = slices[0].start, slices[1].start
    out = []
    for k, part_slices in enumerate(ndimage.find_objects(parts), start=1):
        if part_slices is None:
            continue
        part = parts[part_slices] == k
        global_slices = (slice(part_slices[0].start + y0, part_slices[0].stop + y0),
                         slice(part_slices[1].start + x0, part_slices[1].stop + x0))
        out.append((part, global_slices))
    return out


def _as_regions(kept, hw: tuple[int, int]) -> Regions:
    labels = np.zeros(hw, np.int32)
    points = np.zeros((len(kept), 2), np.float32)
    scores = np.zeros(len(kept), np.float32)
    for k, (crop, slices, score) in enumerate(kept):
        labels[slices][crop] = k + 1
        distance = cv2.distanceTransform(np.pad(crop, 1).astype(np.uint8), cv2.DIST_L2, 5)
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        points[k] = (x - 1 + slices[1].start, y - 1 + slices[0].start)
        scores[k] = score
    return Regions(labels, points, scores)
