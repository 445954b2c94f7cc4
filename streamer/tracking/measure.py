"""Per-instance measurements from cropped masks: area, equivalent diameter, ellipse axes and orientation,
solidity and mean colour; and their conversion to millimetres.

Lengths are in pixels (or mm after `to_mm`), areas in pixels² (mm²), orientation in degrees in [-90, 90)
from the image x axis toward y (down), colours as RGB 0-255.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Columns of the float64[N, len(FIELDS)] table `measure` returns.
FIELDS = ("area", "diameter", "major_axis", "minor_axis", "orientation", "solidity", "red", "green", "blue")
LENGTHS = ("diameter", "major_axis", "minor_axis")
AREAS = ("area",)
COLUMN = {name: i for i, name in enumerate(FIELDS)}


def _outline(mask: np.ndarray) -> tuple:
    return cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]


def shape_one(mask: np.ndarray, contours: tuple | None = None,
              out: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """bool[h, w] -> (float64[len(FIELDS)]: area, diameter, axes and orientation, the rest NaN; the centroid
    (x, y) inside the box).

    From the mask's outer outline (one pass over its pixels; holes count as inside): the polygon's moments give
    area, centroid and ellipse. An outline through the boundary pixels' centres leaves out half a pixel all
    round; Pick's theorem (pixels = polygon area + boundary points / 2 + 1) puts it back, so the area is the
    pixel count of a mask without holes. `out`: the row to fill (a new one where None).
    """
    if out is None:
        out = np.empty(len(FIELDS))
    out[:] = np.nan
    h, w = mask.shape
    contours = _outline(mask) if contours is None else contours
    if len(contours) == 1:  # the usual case, without the sums
        mo = cv2.moments(contours[0])
        m00, m10, m01, m20, m11, m02 = mo["m00"], mo["m10"], mo["m01"], mo["m20"], mo["m11"], mo["m02"]
        area = m00 + len(contours[0]) / 2.0 + 1.0
    else:
        m00 = m10 = m01 = m20 = m11 = m02 = area = 0.0
        for contour in contours:
            mo = cv2.moments(contour)
            m00, m10, m01 = m00 + mo["m00"], m10 + mo["m10"], m01 + mo["m01"]
            m20, m11, m02 = m20 + mo["m20"], m11 + mo["m11"], m02 + mo["m02"]
            area += mo["m00"] + len(contour) / 2.0 + 1.0
    out[0] = area
    if not contours:
        return out, ((w - 1) / 2.0, (h - 1) / 2.0)
    out[1] = 2.0 * math.sqrt(area / math.pi)
    if m00 <= 0:  # a line of pixels: no inside
        points = np.concatenate(contours)[:, 0].astype(float)
        return out, (float(points[:, 0].mean()), float(points[:, 1].mean()))
    cx, cy = m10 / m00, m01 / m00
    # The ellipse with the same second moments: axes 4 sqrt(eigenvalue) of the covariance, grown by the half
    # pixel the outline leaves out.
    a, b, c = m20 / m00 - cx * cx, m11 / m00 - cx * cy, m02 / m00 - cy * cy
    grow = math.sqrt(area / m00)
    half_trace, root = (a + c) / 2.0, math.sqrt(max(((a - c) / 2.0) ** 2 + b * b, 0.0))
    out[2] = 4.0 * math.sqrt(max(half_trace + root, 0.0)) * grow
    out[3] = 4.0 * math.sqrt(max(half_trace - root, 0.0)) * grow
    angle = 0.5 * math.degrees(math.atan2(2.0 * b, a - c))
    out[4] = angle - 180.0 if angle >= 90.0 else angle
    return out, (cx, cy)


def details_one(mask: np.ndarray, pixels: np.ndarray, out: np.ndarray, contours: tuple | None = None) -> None:
    """Fill solidity (outline area / its convex hull's) and the mean colour into `out` (a shape_one row)."""
    if not out[0] > 0:
        return
    contours = _outline(mask) if contours is None else contours
    points = contours[0] if len(contours) == 1 else np.concatenate(contours)
    hull_area = cv2.contourArea(cv2.convexHull(points))
    # Outline areas run through pixel centres, so both sides of the ratio are measured the same way.
    inner = sum(cv2.contourArea(c) for c in contours)
    out[5] = min(inner / hull_area, 1.0) if hull_area > 0 else 1.0
    out[6:9] = cv2.mean(pixels, mask.view(np.uint8))[:3]


def measure_one(mask: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """bool[h, w] mask, uint8[h, w, 3] the image under its box -> float64[len(FIELDS)] (NaN where undefined)."""
    row, _ = shape_one(mask)
    details_one(mask, pixels, row)
    return row


def measure_shapes(boxes: np.ndarray, masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list]:
    """int[N, 4] boxes (x0, y0, x1, y1), N cropped bool masks -> (float64[N, len(FIELDS)] with solidity and
    colour NaN, float64[N, 2] centroids (x, y) in frame pixels, the outlines for add_details). The cheap part."""
    table = np.empty((len(masks), len(FIELDS)))
    centres = np.empty((len(masks), 2))
    origins = np.asarray(boxes).reshape(-1, 4)[:, :2].tolist()
    outlines = []
    for i, (mask, (x0, y0)) in enumerate(zip(masks, origins)):
        outlines.append(_outline(mask))
        _, (cx, cy) = shape_one(mask, outlines[-1], table[i])
        centres[i] = (cx + x0, cy + y0)
    return table, centres, outlines


def add_details(table: np.ndarray, image: np.ndarray, boxes: np.ndarray, masks: list[np.ndarray],
                rows, outlines: list | None = None) -> None:
    """Solidity and mean colour of the given rows of a measure_shapes table, in place (uint8[H, W, 3] frame)."""
    for i in rows:
        x0, y0, x1, y1 = boxes[i]
        details_one(masks[i], image[y0:y1, x0:x1], table[i], None if outlines is None else outlines[i])


def measure(image: np.ndarray, boxes: np.ndarray, masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every figure of every mask -> (float64[N, len(FIELDS)], float64[N, 2] centroids in frame pixels)."""
    table, centres, outlines = measure_shapes(boxes, masks)
    add_details(table, image, boxes, masks, range(len(masks)), outlines)
    return table, centres


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
