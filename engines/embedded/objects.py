"""Object-level structure of a foreground map on the working grid: separable foreground, object centres.

Touching objects are told apart by two cues: the shape (each object is a peak of the distance transform of
the foreground; the contact between two objects is a saddle) and the boundary (a dark valley along the
contact line, from shading). A valley only counts as a boundary when it is deeper than the valleys inside
the exemplar itself, so engraved or textured objects (coins) are not cut into pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.embedded.features import thin

# Peaks nearer than this (in object radii) may be one object; they are merged when no saddle lies between.
_MERGE_RADII = 1.5
# A saddle: the distance transform along the segment between two peaks dips below this fraction of the lower peak.
_SADDLE_RATIO = 0.78
# Smallest object inradius accepted, in exemplar radii (occluded objects keep about 0.6 of it).
_MIN_INRADIUS = 0.4


def disk(radius: float) -> np.ndarray:
    r = max(int(round(radius)), 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """bool[h, w] -> the mask with enclosed background holes of at most `max_area` cells filled."""
    inv = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    if n <= 1:
        return mask
    h, w = mask.shape
    x, y, bw, bh, area = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4]
    touches_border = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    small = (area <= max_area) & ~touches_border
    small[0] = False
    return mask | small[labels]


def valley_strength(intensity: np.ndarray, radius: float) -> np.ndarray:
    """float32[h, w]: how far each cell lies below its surroundings (black top-hat at ~1/3 object radius)."""
    smooth = cv2.GaussianBlur(intensity, (0, 0), 0.8)
    closed = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, disk(max(radius / 3.0, 1.5)))
    return closed - smooth


@dataclass
class ObjectMap:
    """Separable foreground on the grid.

    Attributes:
        foreground: bool[h, w] cleaned foreground (holes filled, boundaries not cut).
        cores: bool[h, w] foreground with boundary valleys cut out.
        distance: float32[h, w] distance transform of `cores` (cells), lightly smoothed.
        radius: the object radius (cells) the map was built for.
        valley: float32[h, w] valley strength (intensity units), see `valley_strength`.
    """

    foreground: np.ndarray
    cores: np.ndarray
    distance: np.ndarray
    radius: float
    valley: np.ndarray


def object_map(prob: np.ndarray, intensity: np.ndarray, radius: float, interior_valley: float) -> ObjectMap:
    """Foreground probability -> ObjectMap.

    Args:
        prob: float32[h, w] target probability.
        intensity: float32[h, w] grid intensity.
        radius: object radius in cells.
        interior_valley: the valley depth (relative to intensity) that still occurs inside an exemplar;
            only deeper valleys cut objects apart.
    """
    fg = prob > 0.5
    if radius >= 3:
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, disk(radius / 5.0)).astype(bool)
    fg = fill_small_holes(fg, 0.12 * math.pi * radius * radius)
    valley = valley_strength(intensity, radius)
    level = max(float(np.median(thin(intensity[fg]))) if fg.any() else 0.0, 20.0)
    cut = valley > max(0.15, 1.5 * interior_valley) * level
    cores = fg & ~cut
    dist = cv2.distanceTransform(cores.astype(np.uint8), cv2.DIST_L2, 5)
    dist = cv2.GaussianBlur(dist, (0, 0), max(radius / 8.0, 0.7))
    return ObjectMap(fg, cores, dist, radius, valley)


def interior_valley_depth(intensity: np.ndarray, inside: np.ndarray, radius: float) -> float:
    """The 90th percentile of relative valley depth inside the exemplar cells `inside` (bool[h, w])."""
    if not inside.any():
        return 0.0
    valley = valley_strength(intensity, radius)[inside]
    level = max(float(np.median(thin(intensity[inside]))), 20.0)
    return float(np.percentile(thin(valley), 90)) / level


def find_centres(objects: ObjectMap, min_radius: float | None = None) -> np.ndarray:
    """Object centres: distance-transform peaks, plateaus and saddle-free neighbours merged.

    Returns:
        float32[K, 3] (x, y, inradius) in grid cells, strongest first.
    """
    r = objects.radius
    dist = objects.distance
    min_radius = _MIN_INRADIUS * r if min_radius is None else min_radius
    peaks = (dist >= cv2.dilate(dist, disk(max(r * 0.35, 1.0)))) & (dist >= min_radius)
    # Plateau pixels of one peak are merged below with the other saddle-free neighbours.
    iy, ix = np.nonzero(peaks)
    if len(ix) == 0:
        return np.zeros((0, 3), np.float32)
    xy = np.column_stack([ix, iy]).astype(np.float64)
    value = dist[iy, ix]
    order = np.argsort(-value, kind="stable")
    xy, value = xy[order], value[order]
    keep = _merge_without_saddle(xy, value, dist, r)
    return np.column_stack([xy[keep], value[keep]]).astype(np.float32)


def _merge_without_saddle(
    xy: np.ndarray, value: np.ndarray, dist: np.ndarray, r: float, eligible: np.ndarray | None = None
) -> np.ndarray:
    """bool[K]: peaks (sorted strongest first) that are not the same object as a stronger kept peak.

    Only pairs of `eligible` peaks (default: all) are compared.
    """
    k = len(xy)
    keep = np.ones(k, bool)
    if k < 2:
        return keep
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    near = d < _MERGE_RADII * r
    if eligible is not None:
        near &= eligible[:, None] & eligible[None, :]
    close = np.argwhere(np.triu(near, 1))
    if len(close) == 0:
        return keep
    # The distance transform along every close pair's segment at once.
    h, w = dist.shape
    t = np.linspace(0.0, 1.0, 9)[1:-1]
    i, j = close[:, 0], close[:, 1]
    px = xy[i, None, 0] + t[None, :] * (xy[j, None, 0] - xy[i, None, 0])
    py = xy[i, None, 1] + t[None, :] * (xy[j, None, 1] - xy[i, None, 1])
    along = dist[np.clip(np.rint(py).astype(int), 0, h - 1), np.clip(np.rint(px).astype(int), 0, w - 1)]
    one_object = along.min(axis=1) >= _SADDLE_RATIO * np.minimum(value[i], value[j])
    for a, b in close[one_object]:  # a < b: a is the stronger peak
        if keep[a] and keep[b]:
            keep[b] = False
    return keep


def no_saddle_between(a: np.ndarray, b: np.ndarray, dist: np.ndarray) -> bool:
    """Whether the distance transform stays up along the segment a -> b ((x, y) cells): one object."""
    h, w = dist.shape
    t = np.linspace(0.0, 1.0, 9)
    px = a[0] + t * (b[0] - a[0])
    py = a[1] + t * (b[1] - a[1])
    along = dist[np.clip(np.rint(py).astype(int), 0, h - 1), np.clip(np.rint(px).astype(int), 0, w - 1)]
    return bool(along[1:-1].min(initial=np.inf) >= _SADDLE_RATIO * min(along[0], along[-1]))


def unreached_centres(objects: ObjectMap, prompts: np.ndarray) -> np.ndarray:
    """float32[K, 2] object centres (x, y) that belong to no prompt's object: far from every prompt, or
    near one but across a saddle."""
    centres = find_centres(objects)[:, :2]
    if len(centres) == 0 or len(prompts) == 0:
        return centres
    d = np.hypot(centres[:, None, 0] - prompts[None, :, 0], centres[:, None, 1] - prompts[None, :, 1])
    r = objects.radius
    keep = np.ones(len(centres), bool)
    for k in range(len(centres)):
        near = np.flatnonzero(d[k] < _MERGE_RADII * r)
        if np.any(d[k, near] < 0.5 * r):
            keep[k] = False
        elif any(no_saddle_between(prompts[j], centres[k], objects.distance) for j in near):
            keep[k] = False
    return centres[keep]


def merge_groups(cells: np.ndarray, objects: ObjectMap) -> np.ndarray:
    """int[N] group per prompt: prompts on one object (near, no saddle between) share a group, 0..G-1."""
    n = len(cells)
    parent = np.arange(n)
    if n > 1:
        h, w = objects.distance.shape
        ix = np.clip(np.rint(cells[:, 0]).astype(int), 0, w - 1)
        iy = np.clip(np.rint(cells[:, 1]).astype(int), 0, h - 1)
        value = objects.distance[iy, ix]
        order = np.argsort(-value, kind="stable")
        solid = value[order] >= 0.3 * objects.radius
        xy = cells[order].astype(np.float64)
        merged = ~_merge_without_saddle(xy, value[order], objects.distance, objects.radius, solid)
        # A merged prompt joins the nearest stronger solid prompt.
        for rank in np.flatnonzero(merged):
            stronger = order[:rank][solid[:rank] & ~merged[:rank]]
            if len(stronger):
                d = np.hypot(*(cells[stronger] - cells[order[rank]]).T)
                parent[order[rank]] = stronger[int(np.argmin(d))]
    _, groups = np.unique(parent, return_inverse=True)
    return groups.astype(np.int64)
