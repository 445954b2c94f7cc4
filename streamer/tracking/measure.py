"""Per-instance measurements from cropped masks: area, equivalent diameter, ellipse axes and orientation,
solidity and mean colour; and their conversion to millimetres.

Lengths are in pixels (or mm after `to_mm`), areas in pixels² (mm²), orientation in degrees in [-90, 90)
from the image x axis toward y (down), colours as RGB 0-255.

Every mask of a frame is measured in one pass, not one by one: streamer.rle.row_runs finds the runs of object
pixels along the rows of all masks with a few array operations, and each run's closed-form sums (pixels,
sum of x, sum of x²) are added up per mask with np.bincount. That gives each mask's exact pixel moments (area,
centroid, second moments -> the ellipse) with no Python loop over masks or pixels. A run's end pixels are the
only candidates for the mask's convex hull (solidity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.rle import RowRuns, row_runs

# Columns of the float64[N, len(FIELDS)] table `measure` returns.
FIELDS = ("area", "diameter", "major_axis", "minor_axis", "orientation", "solidity", "red", "green", "blue")
LENGTHS = ("diameter", "major_axis", "minor_axis")
AREAS = ("area",)
COLUMN = {name: i for i, name in enumerate(FIELDS)}
# A pixel is a unit square: its own variance along each axis (1/12) adds to its centre's spread, so an ellipse's
# second moments come out those of the shape the pixels cover, not of their centres.
_PIXEL_VARIANCE = 1.0 / 12.0


def _sum_of_squares(k: np.ndarray) -> np.ndarray:
    """0² + 1² + ... + k² for k >= -1 (0 for -1), float64."""
    return k * (k + 1) * (2 * k + 1) / 6.0


def shapes(runs: RowRuns, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of N masks, int[N, 2] their boxes' (x0, y0) -> (float64[N, len(FIELDS)]: area, diameter, axes and
    orientation, the rest NaN; float64[N, 2] centroids (x, y) in frame pixels). A mask without pixels has
    area 0 and NaN figures and centroid."""
    count = len(origins)
    first, last = runs.start.astype(np.float64), runs.stop.astype(np.float64) - 1
    y = runs.row.astype(np.float64)
    length = last - first + 1
    sx = (first + last) * length / 2.0
    # Per run: pixels, sum x, sum y, sum x², sum xy, sum y² (in the box's own coordinates: small whole numbers
    # and halves, exact in float64, so the sums below are exact too).
    moments = np.zeros((len(y) + 1, 6))
    np.cumsum(np.stack([length, sx, length * y, _sum_of_squares(last) - _sum_of_squares(first - 1), sx * y,
                        length * y * y], 1), axis=0, out=moments[1:])
    # Runs are in mask order: each mask's sums are differences of the running sums at its bounds.
    m00, m10, m01, m20, m11, m02 = (moments[runs.first[1:]] - moments[runs.first[:-1]]).T
    table = np.full((count, len(FIELDS)), np.nan)
    table[:, COLUMN["area"]] = m00
    with np.errstate(invalid="ignore", divide="ignore"):
        cx, cy = m10 / m00, m01 / m00
        a = m20 / m00 - cx * cx + _PIXEL_VARIANCE
        b = m11 / m00 - cx * cy
        c = m02 / m00 - cy * cy + _PIXEL_VARIANCE
    half_trace, root = (a + c) / 2.0, np.sqrt(np.maximum(((a - c) / 2.0) ** 2 + b * b, 0.0))
    # The ellipse with the same second moments: semi-axes 2 sqrt(eigenvalue).
    table[:, COLUMN["diameter"]] = 2.0 * np.sqrt(m00 / math.pi)
    table[:, COLUMN["major_axis"]] = 4.0 * np.sqrt(np.maximum(half_trace + root, 0.0))
    table[:, COLUMN["minor_axis"]] = 4.0 * np.sqrt(np.maximum(half_trace - root, 0.0))
    angle = 0.5 * np.degrees(np.arctan2(2.0 * b, a - c))
    table[:, COLUMN["orientation"]] = np.where(angle >= 90.0, angle - 180.0, angle)
    table[m00 == 0, 1:] = np.nan
    return table, np.stack([cx, cy], 1) + origins


def lattice_points(hulls: list[np.ndarray]) -> np.ndarray:
    """Integer points inside or on each convex polygon with integer vertices (int[K_i, 1 or 2, 2] each, as
    cv2.convexHull gives), by Pick's theorem: area + boundary points / 2 + 1 -> float64[len(hulls)]. For a hull
    through pixel centres: the pixels its filled polygon covers. All polygons in one pass."""
    if not hulls:
        return np.zeros(0)
    sizes = np.array([len(h) for h in hulls])
    points = np.concatenate(hulls).reshape(-1, 2).astype(np.int64)
    owner = np.repeat(np.arange(len(hulls)), sizes)
    # Each vertex's successor around its own polygon.
    nxt = np.arange(len(points)) + 1
    ends = np.cumsum(sizes)
    nxt[ends - 1] = ends - sizes
    following = points[nxt]
    cross = (points[:, 0] * following[:, 1] - following[:, 0] * points[:, 1]).astype(np.float64)
    step = np.abs(following - points)
    boundary = np.gcd(step[:, 0], step[:, 1]).astype(np.float64)
    twice_area = np.abs(np.bincount(owner, cross, len(hulls)))
    # A hull of two points (a segment) is walked there and back: no area, and twice its boundary points, which
    # the formula halves; a hull of one point gives 1. So these need no case of their own.
    return twice_area / 2.0 + np.bincount(owner, boundary, len(hulls)) / 2.0 + 1.0


@dataclass
class Measured:
    """One frame's masks measured (`measure_shapes`): the table, the centroids in frame pixels and the runs
    `add_details` reads."""

    table: np.ndarray
    centres: np.ndarray
    runs: RowRuns


def measure_shapes(boxes: np.ndarray, masks: list[np.ndarray]) -> Measured:
    """int[N, 4] boxes (x0, y0, x1, y1), N cropped bool masks -> area, diameter, axes and orientation of each
    (solidity and colour NaN), and centroids in frame pixels (a mask without pixels: its box's centre)."""
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    runs = row_runs(masks)
    table, centres = shapes(runs, boxes[:, :2])
    empty = ~np.isfinite(centres[:, 0])
    centres[empty] = (boxes[empty, :2] + boxes[empty, 2:] - 1) / 2.0
    return Measured(table, centres, runs)


def add_details(measured: Measured, image: np.ndarray, boxes: np.ndarray, masks: list[np.ndarray], rows) -> None:
    """Solidity and mean colour of the given rows of a measured table, in place (uint8[H, W, 3] frame).

    Solidity: the mask's pixels over the pixels its convex hull covers (1 for a convex mask). The hull's
    vertices are pixel centres at the ends of the mask's runs; no other pixel can be one."""
    table, runs = measured.table, measured.runs
    rows = [i for i in rows if table[i, COLUMN["area"]] > 0]
    if not rows:
        return
    # Both ends of every run: (x, y) per run, the left ends in [:, 0] and the right ends in [:, 1].
    ends = np.empty((len(runs.row), 2, 2), np.int32)
    ends[:, 0, 0], ends[:, 1, 0] = runs.start, runs.stop - 1
    ends[:, 0, 1] = ends[:, 1, 1] = runs.row
    first = runs.first.tolist()
    hulls = [cv2.convexHull(ends[first[i]:first[i + 1]].reshape(-1, 2)) for i in rows]
    table[rows, COLUMN["solidity"]] = np.minimum(table[rows, COLUMN["area"]] / lattice_points(hulls), 1.0)
    colour = slice(COLUMN["red"], COLUMN["blue"] + 1)
    for i in rows:
        x0, y0, x1, y1 = boxes[i]
        table[i, colour] = cv2.mean(image[y0:y1, x0:x1], masks[i].view(np.uint8))[:3]


def measure(image: np.ndarray, boxes: np.ndarray, masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every figure of every mask in a uint8[H, W, 3] frame -> (float64[N, len(FIELDS)], float64[N, 2] centroids
    in frame pixels)."""
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    measured = measure_shapes(boxes, masks)
    add_details(measured, image, boxes, masks, range(len(masks)))
    return measured.table, measured.centres


def measure_one(mask: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """bool[h, w] mask, uint8[h, w, 3] the image under its box -> float64[len(FIELDS)] (NaN where undefined)."""
    h, w = mask.shape
    return measure(pixels, np.array([[0, 0, w, h]]), [mask])[0][0]


def touches_border(boxes: np.ndarray, width: int, height: int, margin: int = 1) -> np.ndarray:
    """bool[N]: boxes within `margin` pixels of the frame's edge (the object may be cut off)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return ((boxes[:, 0] < margin) | (boxes[:, 1] < margin) | (boxes[:, 2] > width - margin)
            | (boxes[:, 3] > height - margin))


def to_mm(table: np.ndarray, px_per_mm: float | None) -> np.ndarray:
    """The table with lengths divided by the scale and areas by its square; unchanged for None (pixels)."""
    if px_per_mm is None:
        return table
    out = table.copy()
    for name in LENGTHS:
        out[..., COLUMN[name]] /= px_per_mm
    for name in AREAS:
        out[..., COLUMN[name]] /= px_per_mm * px_per_mm
    return out


def as_dict(row: np.ndarray, digits: int = 3) -> dict[str, float | None]:
    """One row -> {field: rounded value, None where undefined}."""
    return {name: (None if not math.isfinite(v) else round(float(v), digits)) for name, v in zip(FIELDS, row)}
