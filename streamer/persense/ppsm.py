"""Point Prompt Selection Module (PerSense, Algorithm 2 and Eq. 5): adaptive threshold and box gating."""

from __future__ import annotations

import math

import numpy as np


def sample_at(similarity: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """float[H, W] map, float[N, 2] points (x, y) -> float[N] values at the nearest pixel (clipped to the map)."""
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    h, w = similarity.shape
    xs = np.clip(np.rint(points_xy[:, 0]).astype(np.int64), 0, w - 1)
    ys = np.clip(np.rint(points_xy[:, 1]).astype(np.int64), 0, h - 1)
    return similarity[ys, xs]


def inside_any_box(points_xy: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float[N, 2], float[B, 4] (x0, y0, x1, y1) -> bool[N]: the point lies in at least one box (edges included)."""
    points_xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y = points_xy[:, 0:1], points_xy[:, 1:2]
    inside = (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])
    return inside.any(axis=1)


def _box_cells(box: np.ndarray, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) pixel range of a float box on a map of (H, W): at least one pixel, inside the map."""
    h, w = hw
    x0 = int(np.clip(math.floor(box[0]), 0, w - 1))
    y0 = int(np.clip(math.floor(box[1]), 0, h - 1))
    x1 = int(np.clip(math.ceil(box[2]), x0 + 1, w))
    y1 = int(np.clip(math.ceil(box[3]), y0 + 1, h))
    return x0, y0, x1, y1


def argmax_point(similarity: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
    """Eq. 1's P_max: the (x, y) pixel of highest similarity, inside `box` (x0, y0, x1, y1) when one is given."""
    x0 = y0 = 0
    region = similarity
    if box is not None:
        x0, y0, x1, y1 = _box_cells(box, similarity.shape)
        region = similarity[y0:y1, x0:x1]
    iy, ix = np.unravel_index(int(np.argmax(region)), region.shape)
    return np.array([ix + x0, iy + y0], dtype=np.float32)


def top_points(similarity: np.ndarray, k: int, separation: float, box: np.ndarray | None = None) -> np.ndarray:
    """float32[<=k, 2]: P_max (Eq. 1) and the next most similar pixels, each at least `separation` pixels from
    the ones before (inside `box` when one is given); the first row is `argmax_point`'s."""
    h, w = similarity.shape
    work = np.array(similarity, np.float32, copy=True)
    if box is not None:
        x0, y0, x1, y1 = _box_cells(box, (h, w))
        outside = np.ones(work.shape, bool)
        outside[y0:y1, x0:x1] = False
        work[outside] = -np.inf
    reach = int(math.ceil(separation))
    points = []
    for _ in range(k):
        iy, ix = np.unravel_index(int(np.argmax(work)), work.shape)
        if not np.isfinite(work[iy, ix]):
            break
        points.append((ix, iy))
        # Only the disc's bounding square can change: the whole map per point cost a millisecond each.
        y0, y1, x0, x1 = max(iy - reach, 0), min(iy + reach + 1, h), max(ix - reach, 0), min(ix + reach + 1, w)
        ys, xs = np.ogrid[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
        work[y0:y1, x0:x1][ys * ys + xs * xs < separation * separation] = -np.inf
    return np.asarray(points, np.float32).reshape(-1, 2)


def adaptive_threshold(s_max: float, count: float, k: float = math.sqrt(2)) -> float:
    """Eq. 5: T_adapt = S_max / (C / k), defined for C > 1."""
    return s_max / (count / k)


def ppsm(
    points: np.ndarray,
    similarity: np.ndarray,
    count: float,
    gate_boxes: np.ndarray | None = None,
    k: float = math.sqrt(2),
    min_count: float = 0.5,
) -> np.ndarray:
    """Select point prompts among IDM's candidates (Algorithm 2).

    For C > 1 a candidate is kept when its similarity is strictly above T_adapt = S_max / (C / k) and it
    lies inside at least one gate box (no gate boxes: no gating). For C <= 1 the paper selects only the
    point of S_max (searched inside the gate boxes when there are any); so does 1 < C <= k, where T_adapt
    >= S_max would select nothing. A count below `min_count` (rounds to zero objects) selects nothing, so
    an empty scene gives an empty answer.

    Args:
        points: float[N, 2] candidate points (x, y) from the IDM.
        similarity: float[H, W] query-support similarity map at frame resolution.
        count: C, the density map generator's count estimate.
        gate_boxes: float[B, 4] (x0, y0, x1, y1), or None for no gating.
        k: the normalisation constant (sqrt 2, the paper's best, Table 3c).

    Returns:
        float32[K, 2] selected points (x, y), in the candidates' order.
    """
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    gated = gate_boxes is not None
    boxes = np.asarray(gate_boxes, dtype=np.float32).reshape(-1, 4) if gated else None
    if gated and len(boxes) == 0:
        return np.zeros((0, 2), np.float32)
    if count < min_count:
        return np.zeros((0, 2), np.float32)

    # Eq. 5 is defined for C > 1, but for 1 < C <= k its threshold is at or above S_max and no point could
    # pass: there the paper's C = 1 rule (the point of S_max) applies too, so counts just above one still
    # give one object rather than none.
    if count <= max(1.0, k):
        if not gated:
            return argmax_point(similarity)[None, :]
        best = max((argmax_point(similarity, box) for box in boxes), key=lambda p: sample_at(similarity, p)[0])
        return best[None, :]

    if len(points) == 0:
        return points
    s_max = float(similarity.max())
    keep = sample_at(similarity, points) > adaptive_threshold(s_max, count, k)
    if gated:
        keep &= inside_any_box(points, boxes)
    return points[keep]
