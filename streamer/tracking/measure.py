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


def measure_one(mask: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """bool[h, w] mask, uint8[h, w, 3] the image under its box -> float64[len(FIELDS)] (NaN where undefined)."""
    out = np.full(len(FIELDS), np.nan)
    m8 = mask.view(np.uint8)
    moments = cv2.moments(m8, binaryImage=True)
    area = moments["m00"]
    if area <= 0:
        out[0] = 0.0
        return out
    out[0] = area
    out[1] = 2.0 * math.sqrt(area / math.pi)
    # The ellipse with the same second moments: axes are 4 sqrt(eigenvalue) of the normalised covariance.
    a, b, c = moments["mu20"] / area, moments["mu11"] / area, moments["mu02"] / area
    half_trace, root = (a + c) / 2.0, math.sqrt(max(((a - c) / 2.0) ** 2 + b * b, 0.0))
    out[2] = 4.0 * math.sqrt(max(half_trace + root, 0.0))
    out[3] = 4.0 * math.sqrt(max(half_trace - root, 0.0))
    angle = 0.5 * math.degrees(math.atan2(2.0 * b, a - c))
    out[4] = angle - 180.0 if angle >= 90.0 else angle
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        points = contours[0] if len(contours) == 1 else np.concatenate(contours)
        hull_area = cv2.contourArea(cv2.convexHull(points))
        # Contour areas run through pixel centres, so both sides of the ratio are measured the same way.
        inner = sum(cv2.contourArea(c) for c in contours)
        out[5] = min(inner / hull_area, 1.0) if hull_area > 0 else 1.0
    out[6:9] = cv2.mean(pixels, m8)[:3]
    return out


def measure(image: np.ndarray, boxes: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """uint8[H, W, 3] frame, int[N, 4] boxes (x0, y0, x1, y1), N cropped bool masks -> float64[N, len(FIELDS)]."""
    table = np.empty((len(masks), len(FIELDS)))
    for i, (mask, (x0, y0, x1, y1)) in enumerate(zip(masks, boxes)):
        table[i] = measure_one(mask, image[y0:y1, x0:x1])
    return table


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
