"""Exemplar correlation: multi-scale normalised cross-correlation with a rotation-invariant exemplar template.

Each exemplar box's intensity is averaged over angles into a radial profile (in units of its radius):
the object's brightness from centre to rim plus the ring of surroundings. The template at a scale is that
profile drawn as a disk; its normalised correlation with the frame is invariant to brightness and
contrast, so dark and bright objects of the kind match alike, and flat background never does.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.embedded.features import thin

_BINS = 24
# The template reaches this many radii from the centre (the object plus a ring of its surroundings).
_EXTENT = 1.2
SCALES = (0.75, 0.87, 1.0, 1.15, 1.32, 1.5)
# Objects are correlated at about this radius in cells (larger ones on a pooled grid: same answer, faster).
_WORK_RADIUS = 7.0
_EDGE_CORRELATION = 0.75


def radial_profile(intensity: np.ndarray, box: np.ndarray) -> np.ndarray:
    """float32[h, w] grid intensity, one grid box (x0, y0, x1, y1) -> float64[_BINS] mean intensity by radius."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5
    r = max(np.sqrt(max(x1 - x0, 1e-3) * max(y1 - y0, 1e-3)) / 2, 0.5)
    half = int(np.ceil(_EXTENT * r)) + 1
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1]
    rho = np.hypot(xs, ys) / r
    iy = np.clip(np.rint(cy + ys).astype(int), 0, intensity.shape[0] - 1)
    ix = np.clip(np.rint(cx + xs).astype(int), 0, intensity.shape[1] - 1)
    bins = np.minimum((rho / _EXTENT * _BINS).astype(int), _BINS).ravel()
    sums = np.bincount(bins, intensity[iy, ix].ravel(), _BINS + 1)[:_BINS]
    counts = np.bincount(bins, minlength=_BINS + 1)[:_BINS]
    filled = counts > 0
    return np.interp(np.arange(_BINS), np.flatnonzero(filled), sums[filled] / counts[filled])


def template(profile: np.ndarray, radius: float) -> np.ndarray:
    """The radial profile drawn as a float32[2R + 1, 2R + 1] disk template for an object of `radius` cells."""
    half = max(int(np.ceil(_EXTENT * radius)), 1)
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1]
    pos = np.hypot(xs, ys) / radius / _EXTENT * _BINS - 0.5
    return np.interp(pos, np.arange(len(profile)), profile).astype(np.float32)


def correlation_map(intensity: np.ndarray, profile: np.ndarray, radius: float) -> np.ndarray:
    """float32[h, w]: the best normalised correlation over SCALES at every cell, in [-1, 1].

    Args:
        intensity: float32[h, w]; profile: the exemplars' mean radial profile; radius: exemplar radius (cells).
    """
    h, w = intensity.shape
    pool = max(radius / _WORK_RADIUS, 1.0)
    work = intensity
    if pool > 1.0:
        size = (max(int(round(w / pool)), 1), max(int(round(h / pool)), 1))
        work = cv2.resize(intensity, size, interpolation=cv2.INTER_AREA)
    r_work = radius / pool
    fill = float(np.median(thin(work.ravel())))
    # Outside the frame counts as typical background, so half-visible objects at the edge still match.
    largest = max(int(np.ceil(_EXTENT * r_work * max(SCALES))), 1)
    padded = cv2.copyMakeBorder(work, largest, largest, largest, largest, cv2.BORDER_CONSTANT, value=fill)
    best = None
    for scale in SCALES:
        t = template(profile, r_work * scale)
        trim = largest - t.shape[0] // 2
        view = padded[trim : padded.shape[0] - trim, trim : padded.shape[1] - trim]
        ncc = cv2.matchTemplate(view, t, cv2.TM_CCOEFF_NORMED)
        best = ncc if best is None else np.maximum(best, ncc, out=best)
    if pool > 1.0:
        best = cv2.resize(best, (w, h), interpolation=cv2.INTER_LINEAR)
    return best
