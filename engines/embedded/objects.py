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
    # The background reachable from the border (one flood fill from a ring around the grid) is no hole;
    # labelling only what is left is several times cheaper than labelling, with stats, all of ~mask.
    ring = np.pad((~mask).view(np.uint8), 1, constant_values=1)
    cv2.floodFill(ring, None, (0, 0), 0, flags=4)
    holes = ring[1:-1, 1:-1]
    if not holes.any():
        return mask
    n, labels = cv2.connectedComponents(holes, connectivity=4)
    small = np.bincount(labels.ravel(), minlength=n) <= max_area
    small[0] = False
    return mask | small[labels]


def valley_kernel(radius: float) -> int:
    """The closing radius (cells) `valley_strength` uses for objects of `radius` cells: equal kernels, equal maps."""
    return max(int(round(max(radius / 3.0, 1.5))), 1)


def valley_strength(intensity: np.ndarray, radius: float) -> np.ndarray:
    """float32[h, w]: how far each cell lies below its surroundings (black top-hat at ~1/3 object radius)."""
    smooth = cv2.GaussianBlur(intensity, (0, 0), 0.8)
    closed = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, disk(valley_kernel(radius)))
    closed -= smooth
    return closed


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


def object_map(
    prob: np.ndarray, intensity: np.ndarray, radius: float, interior_valley: float, valley: np.ndarray | None = None
) -> ObjectMap:
    """Foreground probability -> ObjectMap.

    Args:
        prob: float32[h, w] target probability.
        intensity: float32[h, w] grid intensity.
        radius: object radius in cells.
        interior_valley: the valley depth (relative to intensity) that still occurs inside an exemplar;
            only deeper valleys cut objects apart.
        valley: valley_strength(intensity, radius) when the caller has it already.
    """
    fg = prob > 0.5
    if radius >= 3:
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, disk(radius / 5.0)).astype(bool)
    fg = fill_small_holes(fg, 0.12 * math.pi * radius * radius)
    valley = valley_strength(intensity, radius) if valley is None else valley
    level = max(float(np.median(thin(intensity[fg]))) if fg.any() else 0.0, 20.0)
    cut = valley > max(0.15, 1.5 * interior_valley) * level
    cores = fg & ~cut
    dist = cv2.distanceTransform(cores.astype(np.uint8), cv2.DIST_L2, 5)
    dist = cv2.GaussianBlur(dist, (0, 0), max(radius / 8.0, 0.7))
    return ObjectMap(fg, cores, dist, radius, valley)


def interior_valley_depth(
    intensity: np.ndarray, inside: np.ndarray, radius: float, valley: np.ndarray | None = None
) -> float:
    """The 90th percentile of relative valley depth inside the exemplar cells `inside` (bool[h, w]);
    `valley`: valley_strength(intensity, radius) when the caller has it already."""
    if not inside.any():
        return 0.0
    valley = (valley_strength(intensity, radius) if valley is None else valley)[inside]
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
    i, j, _ = close_pairs(xy, xy, _MERGE_RADII * r)
    if eligible is not None:
        both = eligible[i] & eligible[j]
        i, j = i[both], j[both]
    close = np.column_stack([i, j])
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


def close_pairs(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of points nearer than `radius`, without the full [K, L] distance matrix (hundreds of objects).

    Args:
        a: float[K, 2] points (x, y); b: float[L, 2] points, or `a` itself for pairs within one set.

    Returns:
        (int[P] index into a, int[P] index into b, float64[P] distance) in row-major order of the
        distance matrix; within one set only pairs i < j.
    """
    same = b is a
    a64 = np.asarray(a, np.float64).reshape(-1, 2)
    b64 = a64 if same else np.asarray(b, np.float64).reshape(-1, 2)
    # Sweep along the wider axis: the candidates of a point are the points within `radius` along it.
    axis = int(np.ptp(b64[:, 1]) > np.ptp(b64[:, 0])) if len(b64) else 0
    order = np.argsort(b64[:, axis], kind="stable")
    along = b64[order, axis]
    lo = np.searchsorted(along, a64[:, axis] - radius, "left")
    counts = np.searchsorted(along, a64[:, axis] + radius, "right") - lo
    i = np.repeat(np.arange(len(a64)), counts)
    j = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
    if same:
        i, j = i[i < j], j[i < j]
    # The exact test of the dense matrix.
    d = np.hypot(a64[i, 0] - b64[j, 0], a64[i, 1] - b64[j, 1])
    near = d < radius
    i, j, d = i[near], j[near], d[near]
    rows = np.lexsort((j, i))
    return i[rows], j[rows], d[rows]


def unreached_centres(objects: ObjectMap, prompts: np.ndarray) -> np.ndarray:
    """float32[K, 2] object centres (x, y) that belong to no prompt's object: far from every prompt, or
    near one but across a saddle."""
    centres = find_centres(objects)[:, :2]
    if len(centres) == 0 or len(prompts) == 0:
        return centres
    r = objects.radius
    k, j, d = close_pairs(centres, prompts, _MERGE_RADII * r)
    keep = np.ones(len(centres), bool)
    keep[k[d < 0.5 * r]] = False
    # Every (centre, near prompt) pair's segment at once: no saddle between them means one object.
    k, j = k[keep[k]], j[keep[k]]
    if len(k):
        dist = objects.distance
        h, w = dist.shape
        a, b = np.asarray(prompts, np.float64)[j], centres[k].astype(np.float64)
        t = np.linspace(0.0, 1.0, 9)
        px = a[:, None, 0] + t * (b[:, None, 0] - a[:, None, 0])
        py = a[:, None, 1] + t * (b[:, None, 1] - a[:, None, 1])
        along = dist[np.clip(np.rint(py).astype(int), 0, h - 1), np.clip(np.rint(px).astype(int), 0, w - 1)]
        same = along[:, 1:-1].min(axis=1) >= _SADDLE_RATIO * np.minimum(along[:, 0], along[:, -1])
        keep[k[same]] = False
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
