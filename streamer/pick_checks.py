"""Checks of a picked object that the decoder's mask alone does not make: is it the background?

A click on the belt gives a mask of belt texture, often small, that passed with at most a size warning (issue 25:
`--point 5,5`). An object differs in colour from what surrounds it; a patch of belt does not. Measured on the
simulator (2 frames, 16 clicks on the belt, 18 on objects): the mean colour inside the mask and in a ring around it
differ by 44-78 CIELAB units for products, 40-62 for the other kind of object, 1-37 for the belt, 12 of 16 of
those under 25.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_CONTRAST = 25.0  # CIELAB distance between the mask's mean colour and its surroundings'; objects were >= 34


def colour_contrast(image_rgb: np.ndarray, mask: np.ndarray) -> float:
    """The CIELAB distance between the mean colour inside `mask` and in a ring around it (a third of its size)."""
    mask = np.asarray(mask, bool)
    pixels = int(np.count_nonzero(mask))
    if pixels == 0:
        return 0.0
    k = max(3, int(np.sqrt(pixels) / 3))
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)).astype(bool) & ~mask
    if not ring.any():
        return float("inf")  # the whole image: nothing to compare with (the decoder's own checks refuse this)
    lab = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    return float(np.linalg.norm(lab[mask].mean(axis=0) - lab[ring].mean(axis=0)))


def background_warning(image_rgb: np.ndarray, mask: np.ndarray) -> str | None:
    """A warning where the picked region looks like the background rather than an object, else None."""
    contrast = colour_contrast(image_rgb, mask)
    if contrast >= MIN_CONTRAST:
        return None
    return (f"this looks like the background, not a product: its colour hardly differs from around it "
            f"(a difference of {contrast:.0f}; objects show {MIN_CONTRAST:.0f} or more); click inside one item")
