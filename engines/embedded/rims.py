"""Object candidates at a known scale: cells ringed, at the objects' radius, by an outline.

A compact object's outline crosses every ray from its centre at about its radius, so at the centre the
radial derivative of the image, looked up on the circle of that radius, is strong in every direction.
The rim map holds, per cell, a low percentile over `ANGLES` directions of that derivative (each direction
taking its best of a few radii near the object's), so only closed outlines score: an edge on one side (a
mortar line, a shadow) or texture (random directions) does not. Its local maxima are the candidates,
found wherever an object of the kind is, whatever its brightness; telling the kind's objects from the
background's other round things is the caller's job (see `dmg`).
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.embedded.features import disk

ANGLES = 16
# The radii each direction looks at, in object radii.
_RADII = (0.8, 1.0, 1.2)
# The share of directions that must see an outline: the percentile taken over directions.
_PERCENTILE = 30.0
# Candidates are the rim map's maxima over a disc of this many object radii.
_SPACING = 0.6


def rim_map(gx: np.ndarray, gy: np.ndarray, radius: float, scratch: np.ndarray | None = None) -> np.ndarray:
    """float32[h, w] outline strength around each cell at `radius` cells, from the image gradient gx, gy.

    scratch: a float32[ANGLES, h, w] array to work in (several MB a frame: reusing one saves page faults)."""
    h, w = gx.shape
    pad = int(np.ceil(radius * max(_RADII))) + 1
    if scratch is None or scratch.shape != (ANGLES, h, w) or scratch.dtype != np.float32:
        scratch = np.empty((ANGLES, h, w), np.float32)
    per_angle = scratch
    for k in range(ANGLES // 2):
        angle = 2 * np.pi * k / ANGLES
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        # |derivative| along a direction and its opposite are equal: one map serves both.
        derivative = np.abs(gx * c + gy * s)
        padded = cv2.copyMakeBorder(derivative, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        for out, sign in ((per_angle[k], 1), (per_angle[k + ANGLES // 2], -1)):
            out[:] = 0.0
            for factor in _RADII:
                dx = int(round(sign * radius * factor * c))
                dy = int(round(sign * radius * factor * s))
                # out[y, x] = max(out, derivative[y + dy, x + dx]), edges replicated: a view of the padding.
                np.maximum(out, padded[pad + dy : pad + dy + h, pad + dx : pad + dx + w], out=out)
    kth = int(round(_PERCENTILE / 100 * (ANGLES - 1)))
    # Directions last: a partition along the contiguous axis is several times faster.
    by_cell = np.ascontiguousarray(per_angle.transpose(1, 2, 0))
    return np.partition(by_cell, kth, axis=2)[..., kth]


def rim_candidates(rim: np.ndarray, radius: float, floor: float) -> np.ndarray:
    """float64[K, 2] (x, y) cells: local maxima of the rim map above `floor`, `_SPACING` radii apart."""
    peaks = (rim >= cv2.dilate(rim, disk(max(_SPACING * radius, 1.0)))) & (rim > floor)
    _, _, _, centroids = cv2.connectedComponentsWithStats(peaks.astype(np.uint8), connectivity=8)
    return centroids[1:].astype(np.float64).reshape(-1, 2)


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
    keep = np.ones(len(points), bool)
    for i in np.argsort(-scores, kind="stable"):
        if not keep[i]:
            continue
        d = np.hypot(points[:, 0] - points[i, 0], points[:, 1] - points[i, 1])
        near = (d < spacing * np.maximum(radii, radii[i])) & keep
        near[i] = False
        keep[near & (np.arange(len(points)) != i)] = False
    return keep
