"""Overlay images of a result, for people (the segment CLI's *_overlay.jpg and the stream's JPEG part)."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.types import SegmentationResult


def _palette(n: int) -> np.ndarray:
    # Golden-ratio hue steps keep neighbouring ids apart in colour.
    hues = (np.arange(n) * 0.61803398875 % 1.0 * 179).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 200, np.uint8), np.full(n, 255, np.uint8)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def overlay(image_rgb: np.ndarray, result: SegmentationResult, alpha: float = 0.5) -> np.ndarray:
    """uint8[H, W, 3] RGB: the frame with each instance tinted, outlined, and the count written in a corner."""
    out = image_rgb.copy()
    colours = _palette(max(result.count, 1))
    for inst, colour in zip(result.instances, colours):
        x0, y0, x1, y1 = inst.bbox
        region = out[y0:y1, x0:x1]
        region[inst.mask] = (region[inst.mask] * (1 - alpha) + colour * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(inst.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), 1, offset=(x0, y0))
    label = f"count {result.count}"
    cv2.putText(out, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return out
