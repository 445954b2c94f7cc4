"""Instance Detection Module (PerSense, Algorithm 3 and Eq. 2-4): density map -> candidate point prompts."""

from __future__ import annotations

import cv2
import numpy as np

_EROSION_KERNEL = np.ones((3, 3), np.uint8)
# Eq. 4's epsilon, so that a degenerate region never divides by zero.
_MOMENT_EPS = 1e-7


def density_to_gray(density: np.ndarray) -> np.ndarray:
    """float[H, W] -> uint8[H, W] by min-max normalisation to 0-255 (Algorithm 3, line 1).

    A constant map (e.g. all zeros: nothing was found) becomes all zeros rather than dividing by zero.
    """
    density = np.asarray(density, dtype=np.float32)
    if density.size == 0 or not np.isfinite(density).all():
        return np.zeros(density.shape, np.uint8)
    lo, hi, _, _ = cv2.minMaxLoc(density.reshape(density.shape[0], -1))
    if hi - lo <= 1e-12:
        return np.zeros(density.shape, np.uint8)
    # One pass (scale, round to nearest, saturate) instead of numpy's five over the frame.
    scale = 255.0 / (hi - lo)
    return cv2.convertScaleAbs(density, alpha=scale, beta=-lo * scale)


def _region_centroid(region: np.ndarray, offset_xy: tuple[int, int]) -> tuple[float, float]:
    """Eq. 4: centroid of a binary region by its spatial moments, in frame coordinates."""
    m = cv2.moments(region, binaryImage=True)
    cx = m["m10"] / (m["m00"] + _MOMENT_EPS)
    cy = m["m01"] / (m["m00"] + _MOMENT_EPS)
    return (cx + offset_xy[0], cy + offset_xy[1])


def _filled_region(contour: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The pixels inside `contour`, as uint8[h, w] over its bounding rectangle, and that rectangle's (x, y)."""
    x, y, w, h = cv2.boundingRect(contour)
    region = np.zeros((h, w), np.uint8)
    cv2.drawContours(region, [contour - np.array([x, y], dtype=contour.dtype)], -1, 1, thickness=cv2.FILLED)
    return region, (x, y)


def split_composite(contour: np.ndarray, ratio: float = 0.5) -> list[tuple[float, float]]:
    """Split one composite contour into its objects' centroids (Algorithm 3, lines 18-21).

    The distance transform of the filled contour is thresholded at `ratio * max`; each resulting child
    region is one object. Returns the children's centroids (x, y); an empty list if no child appears.
    """
    region, offset = _filled_region(contour)
    # Pad by one pixel so the region's border counts as boundary even where the contour touches the box edge.
    padded = cv2.copyMakeBorder(region, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
    peak = float(dist.max())
    if peak <= 0:
        return []
    cores = (dist > ratio * peak).astype(np.uint8)
    children, _ = cv2.findContours(cores, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    centroids = []
    for child in children:
        child_region, child_offset = _filled_region(child)
        cx, cy = _region_centroid(child_region, child_offset)
        centroids.append((cx - 1 + offset[0], cy - 1 + offset[1]))
    return centroids


def idm(
    density: np.ndarray, threshold: int = 30, composite_sigmas: float = 2.0, keep_composite_centroid: bool = True
) -> np.ndarray:
    """Candidate point prompts from a density map (Algorithm 3).

    1. min-max normalise to 0-255 (I_gray); 2. I_binary = I_gray >= T (Eq. 2, T = 30);
    3. erode with a 3x3 kernel; 4. external contours; their areas ~ N(mu, sigma^2) (Eq. 3, population std);
    5. a contour is composite when its area > mu + 2 sigma; each composite is split by a distance transform
       thresholded at 0.5 * max into child contours; 6. centroids by spatial moments (Eq. 4).

    As Algorithm 3's last line says, the centres of step 7 (every contour, composites included: "including both
    parent and child") and of step 21 (every child) are returned; the decoder's duplicate suppression then
    merges a parent's mask with its child's. `keep_composite_centroid=False` drops the centroid of a composite
    that splits into children, since it lies on the contact line between the objects it merges.

    Args:
        density: float[H, W] density map at frame resolution.
        threshold: T in Eq. 2, on the 0-255 scale.
        composite_sigmas: the 2 in T_comp = mu + 2 sigma.
        keep_composite_centroid: also return a split composite contour's own centroid (the paper's reading).

    Returns:
        float32[N, 2] candidate points (x, y) in pixels; N = 0 for an empty or constant map.
    """
    gray = density_to_gray(density)
    binary = (gray >= threshold).astype(np.uint8)
    eroded = cv2.erode(binary, _EROSION_KERNEL)
    contours, _ = cv2.findContours(eroded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2), np.float32)

    areas = np.array([cv2.contourArea(c) for c in contours], dtype=np.float64)
    mu, sigma = areas.mean(), areas.std()
    area_threshold = mu + composite_sigmas * sigma

    points: list[tuple[float, float]] = []
    for contour, area in zip(contours, areas):
        if area > area_threshold:
            children = split_composite(contour)
            if children:
                points.extend(children)
                if not keep_composite_centroid:
                    continue
        region, offset = _filled_region(contour)
        points.append(_region_centroid(region, offset))
    return np.asarray(points, dtype=np.float32).reshape(-1, 2)
