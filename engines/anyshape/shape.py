"""Shape descriptors of one object's mask, and whether a found region has the support object's shape.

"Same product" weighs shape as well as material: a region the pixel classifier calls product-like is an
object only when its area, elongation, solidity and holes are about the support's (a brown candy is no dowel,
a washer no nut). All measures are rotation invariant and, but for the area, scale invariant.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class ShapeStats:
    """One mask's shape, in the cells of the grid it was measured on.

    area: filled pixels (holes excluded); elongation: sqrt of the ratio of the second moments' eigenvalues
    (1 for a disk or square, 4 for a 4:1 rod); solidity: area / convex hull area (1 for convex shapes, ~0.5 for
    an L); hole_fraction: holes' area / (area + holes); inner_radius: the largest inscribed circle's radius;
    circle_fill: (area + holes) / the smallest enclosing circle's area (1 for a disk, 0.64 for a square, lower
    for a rod): tells a disc from a square tile, or a hexagon from a star, where the other measures agree;
    rectangularity: (area + holes) / the smallest rotated rectangle's area (pi / 4 for every ellipse, 1 for every
    rectangle, whatever its elongation), where measured (`engines.anyshape.verify.outline_stats`), else None.
    """

    area: float
    elongation: float
    solidity: float
    hole_fraction: float
    inner_radius: float
    circle_fill: float = 1.0
    rectangularity: float | None = None


def shape_stats(mask: np.ndarray) -> ShapeStats:
    """bool[h, w] one object's mask (one connected region expected) -> its ShapeStats."""
    mask = np.asarray(mask, bool)
    area = float(mask.sum())
    if area == 0:
        return ShapeStats(0.0, 1.0, 1.0, 0.0, 0.0)
    filled = fill_holes(mask)
    filled_area = int(np.count_nonzero(filled))
    holes = float(filled_area) - area
    corners = _pixel_corners(filled)  # solidity's and circle fill's: the outline pixels' corners, found once
    return ShapeStats(area, elongation(mask), _solidity(filled_area, corners), holes / (area + holes),
                      inner_radius(mask), _circle_fill(filled_area, corners))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """bool[h, w] -> the mask with its holes filled: the background cells not 4-connected to the mask's border
    (scipy.ndimage.binary_fill_holes's rule, by one flood fill)."""
    outside = np.pad(~np.asarray(mask, bool), 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2, flags=4)
    return outside[1:-1, 1:-1] != 2


def inner_radius(mask: np.ndarray) -> float:
    """The radius of the largest circle inside a mask bool[h, w] (its distance transform's peak)."""
    return float(cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5).max())


def circle_fill(filled: np.ndarray) -> float:
    """A hole-free mask's area / its smallest enclosing circle's area (pixel squares: the circle of their corners)."""
    return _circle_fill(int(np.count_nonzero(filled)), _pixel_corners(filled))


def _circle_fill(area: int, corners: np.ndarray) -> float:
    if area == 0:
        return 1.0
    _, radius = cv2.minEnclosingCircle(corners)
    return float(min(area / max(np.pi * radius * radius, 1.0), 1.0))


def _pixel_corners(mask: np.ndarray) -> np.ndarray:
    """float32[4 * N', 2] the corners of the mask's outline pixels (the pixels' squares, not their centres:
    a small region's hull and circle are then its true extent). Inner pixels cannot be on a hull or circle."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    ys, xs = np.nonzero(mask & (inner == 0))
    return np.concatenate([
        np.stack([xs, ys], 1), np.stack([xs + 1, ys], 1), np.stack([xs, ys + 1], 1), np.stack([xs + 1, ys + 1], 1)
    ]).astype(np.float32)


def elongation(mask: np.ndarray) -> float:
    """sqrt(lambda_max / lambda_min) of the mask's pixel coordinates' covariance (+1/12: a pixel's own extent)."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if m["m00"] <= 0:
        return 1.0
    a, b, c = m["mu20"] / m["m00"] + 1 / 12, m["mu11"] / m["m00"], m["mu02"] / m["m00"] + 1 / 12
    root = np.sqrt(((a - c) / 2) ** 2 + b * b)
    low = max((a + c) / 2 - root, 1e-6)
    return float(np.sqrt(((a + c) / 2 + root) / low))


def solidity(filled: np.ndarray) -> float:
    """area / convex hull area of a hole-free mask (pixel squares: the hull of the pixels' corners)."""
    return _solidity(int(np.count_nonzero(filled)), _pixel_corners(filled))


def _solidity(area: int, corners: np.ndarray) -> float:
    if area < 3:
        return 1.0
    hull_area = float(cv2.contourArea(cv2.convexHull(corners)))
    return float(min(area / max(hull_area, 1.0), 1.0))


@dataclass(frozen=True)
class ShapeTolerance:
    """How far a region may be from the support's shape and still be the product.

    The tolerances were set on the category development set (streamer/devset, --set categories): rotated,
    +-15% scaled, partly occluded (up to 20%) and border-free items of every category pass, and the foreign
    cases (other shapes of similar colour) fail. Areas are relative to the support's.
    """

    min_area: float = 0.3
    max_area: float = 2.2
    elongation: float = 1.7  # the ratio of elongations, either way (rods of 2.5:1 and 4:1 are one product)
    solidity: float = 0.16  # absolute difference
    # the ratio of circle fills times elongations, either way: for convex shapes the circle fill falls with the
    # elongation (a 4:1 rod fills 0.3 of its circle, a 2.5:1 rod 0.44); their product tells a square (0.64)
    # from a disk (1.0) or a hexagon (0.83) alike for every elongation (rods: 1.1-1.2)
    circle_fill: float = 1.25
    hole_fraction: float = 0.5  # a holed support's regions keep at least this share of its hole fraction
    # the ratio of rectangularities, either way, where both shapes have one; None: not judged
    rectangularity: float | None = None


def shape_agreement(region: ShapeStats, support: ShapeStats, tolerance: ShapeTolerance) -> float:
    """A score in [0, 1] of how well the region's shape fits the support's: 1 minus `shape_distance`, at least 0
    (1: the same shape)."""
    return max(0.0, 1.0 - shape_distance(region, support, tolerance))


def shape_distance(region: ShapeStats, support: ShapeStats, tolerance: ShapeTolerance) -> float:
    """How far the region's shape is from the support's: each measure's difference as a share of its tolerance,
    and those shares' root sum of squares (0: the same shape; 1 and over: another shape)."""
    if support.area <= 0 or region.area <= 0:
        return float("inf")
    ratio = region.area / support.area
    shares = [
        abs(np.log(ratio)) / np.log(tolerance.max_area if ratio >= 1 else 1 / tolerance.min_area),
        abs(np.log(region.elongation / support.elongation)) / np.log(tolerance.elongation),
        abs(region.solidity - support.solidity) / tolerance.solidity,
        abs(np.log(region.circle_fill * region.elongation / (support.circle_fill * support.elongation)))
        / np.log(tolerance.circle_fill),
    ]
    if tolerance.rectangularity is not None and region.rectangularity and support.rectangularity:
        shares.append(abs(np.log(region.rectangularity / support.rectangularity)) / np.log(tolerance.rectangularity))
    if support.hole_fraction > 0.05:
        shares.append(max(0.0, 1 - region.hole_fraction / (support.hole_fraction * tolerance.hole_fraction)))
    # Root of the summed squares, not the largest share: a region off on several measures at once (a plate
    # against an L: squarer, more solid, fuller) is another shape even where each measure alone is within bounds.
    return float(np.sqrt(np.sum(np.square(shares))))


def ellipse_fit(mask: np.ndarray) -> float:
    """IoU of a mask bool[H, W] with the ellipse of the same second moments: about 1 for disks and ellipses
    (0.94-0.98 for real coins cut from photographs), 0.84-0.86 for squares and tiles, under 0.65 for brackets,
    stars and rings (measured on the development sets' supports)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return 1.0
    cx, cy = xs.mean(), ys.mean()
    cov = np.cov(np.stack([xs - cx, ys - cy]), bias=True) + np.eye(2) / 12
    values, vectors = np.linalg.eigh(cov)
    semi = 2.0 * np.sqrt(np.maximum(values, 1e-6))  # an ellipse's semi-axes are twice its moments' std
    reach = int(np.ceil(semi.max())) + 1
    x0, y0 = max(int(cx) - reach, 0), max(int(cy) - reach, 0)
    x1 = min(max(int(cx) + reach + 1, xs.max() + 1), mask.shape[1])
    y1 = min(max(int(cy) + reach + 1, ys.max() + 1), mask.shape[0])
    gy, gx = np.mgrid[min(y0, ys.min()):y1, min(x0, xs.min()):x1]
    along = np.stack([gx - cx, gy - cy], -1) @ vectors
    inside = ((along / semi) ** 2).sum(-1) <= 1.0
    crop = mask[min(y0, ys.min()):y1, min(x0, xs.min()):x1]
    return float((inside & crop).sum() / max((inside | crop).sum(), 1))
