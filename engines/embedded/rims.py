"""Object candidates at a known scale: cells ringed, at the objects' radius, by an outline.

A compact object's outline crosses every ray from its centre at about its radius, so at the centre the
radial derivative of the image, looked up on the circle of that radius, is strong in every direction.
The rim strength of a cell is a low percentile over `ANGLES` directions of that derivative (each direction
taking its best of a few radii near the object's), so only closed outlines score: an edge on one side (a
mortar line, a shadow) or texture (random directions) does not. Its local maxima are the candidates,
found wherever an object of the kind is, whatever its brightness; telling the kind's objects from the
background's other round things is the caller's job (see `dmg`).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from engines.embedded.features import disk

ANGLES = 16
# The radii each direction looks at, in object radii.
_RADII = (0.8, 1.0, 1.2)
# The share of directions that must see an outline: the percentile taken over directions.
_PERCENTILE = 30.0
_KTH = int(round(_PERCENTILE / 100 * (ANGLES - 1)))
# The rim strength is computed this many rows at a time.
_BAND_ROWS = 64
# Candidates are the rim strength's maxima over a disc of this many object radii.
_SPACING = 0.6
# Close-candidate suppression compares all pairs at once up to this many candidates (a K x K matrix).
_PAIRWISE_LIMIT = 2048


class RimField:
    """The rim strength around cells at one radius (cells), from the image gradient gx, gy float32[h, w],
    evaluated where asked: at every cell, or at given cells. The directional derivatives it looks up are
    computed once."""

    def __init__(self, gx: np.ndarray, gy: np.ndarray, radius: float):
        self.radius = float(radius)
        self.shape = gx.shape
        self.pad = p = int(np.ceil(radius * max(_RADII))) + 1
        h, w = self.shape
        # Per half-turn direction, |derivative| (a direction and its opposite share it), padded by replication.
        self._derivatives = np.empty((ANGLES // 2, h + 2 * p, w + 2 * p), np.float32)
        # Per direction: the (derivative map, dx, dy) it looks up, one per radius.
        self._lookups: list[list[tuple[int, int, int]]] = [[] for _ in range(ANGLES)]
        for k in range(ANGLES // 2):
            angle = 2 * np.pi * k / ANGLES
            c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
            derivative = np.abs(gx * c + gy * s)
            cv2.copyMakeBorder(derivative, p, p, p, p, cv2.BORDER_REPLICATE, dst=self._derivatives[k])
            for direction, sign in ((k, 1), (k + ANGLES // 2, -1)):
                for factor in _RADII:
                    dx = int(round(sign * radius * factor * c))
                    dy = int(round(sign * radius * factor * s))
                    self._lookups[direction].append((k, dx, dy))

    def strength(self) -> np.ndarray:
        """float32[h, w]: the rim strength at every cell, in bands of `_BAND_ROWS` rows (a band's 16 direction
        planes stay in the CPU's cache through the selection network: 20% faster than whole planes)."""
        h, w = self.shape
        p = self.pad
        out = np.empty((h, w), np.float32)
        for y0 in range(0, h, _BAND_ROWS):
            y1 = min(y0 + _BAND_ROWS, h)
            planes = []
            for lookups in self._lookups:
                views = [self._derivatives[k, p + dy + y0 : p + dy + y1, p + dx : p + dx + w] for k, dx, dy in lookups]
                # The direction's best radius, edges replicated (views of the padding). OpenCV's max, not
                # numpy's: on these strided views numpy's is about three times slower.
                best = cv2.max(views[0], views[1])
                for view in views[2:]:
                    cv2.max(best, view, dst=best)
                planes.append(best)
            out[y0:y1] = order_statistic(planes, _KTH)
        return out

    def at(self, cells: np.ndarray) -> np.ndarray:
        """float32[K]: the rim strength at int[K, 2] (x, y) cells (clipped to the grid)."""
        h, w = self.shape
        x = np.clip(cells[:, 0], 0, w - 1) + self.pad
        y = np.clip(cells[:, 1], 0, h - 1) + self.pad
        k, dx, dy = np.array([lookup for lookups in self._lookups for lookup in lookups]).T[:, :, None]
        looked_up = self._derivatives[k, y[None] + dy, x[None] + dx]  # [ANGLES * len(_RADII), K]
        per_direction = looked_up.reshape(ANGLES, len(_RADII), -1).max(axis=1)
        return np.sort(per_direction, axis=0)[_KTH]

    def candidates(self, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(float64[K, 2] (x, y) cells, float32[K] rim strength there): the rim strength's local maxima
        above `floor`, `_SPACING` radii apart."""
        rim = self.strength()
        peaks = (rim >= cv2.dilate(rim, disk(max(_SPACING * self.radius, 1.0)))) & (rim > floor)
        _, _, _, centroids = cv2.connectedComponentsWithStats(peaks.astype(np.uint8), connectivity=8)
        found = centroids[1:].astype(np.float64).reshape(-1, 2)
        return found, self.at(np.rint(found).astype(np.int64))


def rim_map(gx: np.ndarray, gy: np.ndarray, radius: float) -> np.ndarray:
    """float32[h, w] rim strength around every cell at `radius` cells."""
    return RimField(gx, gy, radius).strength()


@lru_cache(maxsize=None)
def _selection_network(n: int, k: int) -> tuple[tuple[int, int], ...]:
    """The compare-exchange pairs (i, j), i < j, that put the k-th smallest of n inputs (n a power of two) at
    position k: Batcher's odd-even merge sort network, less the pairs position k does not depend on."""
    pairs = []
    p = 1
    while p < n:
        d = p
        while d >= 1:
            for j in range(d % p, n - d, 2 * d):
                for i in range(min(d, n - j - d)):
                    if (i + j) // (2 * p) == (i + j + d) // (2 * p):
                        pairs.append((i + j, i + j + d))
            d //= 2
        p *= 2
    needed, kept = {k}, []
    for a, b in reversed(pairs):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    return tuple(reversed(kept))


def order_statistic(planes: list[np.ndarray], k: int) -> np.ndarray:
    """The element-wise k-th smallest (0-based) of n equal-shaped float32 arrays (n a power of two), by a
    selection network: a few dozen whole-array min/max operations instead of a partition per element
    (several times faster for tens of thousands of small sets). The arrays are overwritten."""
    n = len(planes)
    if n & (n - 1):
        raise ValueError(f"order_statistic needs a power of two of arrays, got {n}")
    planes = list(planes)
    spare = np.empty_like(planes[0])
    for a, b in _selection_network(n, k):
        cv2.min(planes[a], planes[b], dst=spare)
        cv2.max(planes[a], planes[b], dst=planes[b])
        planes[a], spare = spare, planes[a]
    return planes[k]


def snap_to_candidates(points: np.ndarray, candidates: np.ndarray, reach: float) -> np.ndarray:
    """float[M, 2] points moved to the nearest candidate within `reach` cells (else left where they are)."""
    if len(candidates) == 0:
        return np.asarray(points, np.float64)
    points = np.asarray(points, np.float64).copy()
    for k, (x, y) in enumerate(points):
        d = np.hypot(candidates[:, 0] - x, candidates[:, 1] - y)
        j = int(np.argmin(d))
        if d[j] < reach:
            points[k] = candidates[j]
    return points


def suppress_close(points: np.ndarray, radii: np.ndarray, scores: np.ndarray, spacing: float = 0.6) -> np.ndarray:
    """bool[K]: the points kept when, of two nearer than `spacing` x the larger radius, the higher-scoring stays."""
    n = len(points)
    keep = np.ones(n, bool)
    if n < 2:
        return keep

    def near(rows: slice) -> np.ndarray:
        """bool[len(rows), K]: which points are too close to each of these."""
        p = points[rows]
        d = np.hypot(p[:, None, 0] - points[None, :, 0], p[:, None, 1] - points[None, :, 1])
        return d < spacing * np.maximum(radii[rows, None], radii[None, :])

    # All pairs at once where they fit in a few MB (the usual frame); row by row beyond.
    pairs = near(slice(None)) if n <= _PAIRWISE_LIMIT else None
    for i in np.argsort(-scores, kind="stable").tolist():
        if keep[i]:
            row = pairs[i] if pairs is not None else near(slice(i, i + 1))[0]
            keep[row] = False
            keep[i] = True  # its own row counts it as near itself
    return keep
