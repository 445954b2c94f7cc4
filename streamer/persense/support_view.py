"""The support image as the engines learn from it: camera-sized supports whole, a huge one (an upload of tens of
megapixels) cropped to its object's neighbourhood and scaled down, so that learning and calibrating a support
costs seconds and bounded memory whatever the upload."""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)

# The most support-image pixels learning looks at: a larger image is cropped to the object's neighbourhood (two
# object sizes each way), then scaled down to this. A 50 MP upload otherwise cost minutes and 4 GB of filter
# planes (measured with benchmarks/hostile_cases.py --cases uploads: three parallel 50 MP uploads peaked at
# +619 MB with a float copy of the mask and 2 MP views, +399 MB with 1 MP views, +370 MB with the support checks
# on the view too); a camera's supports up to 1 MP are used whole, and objects up to about 200 px across keep
# their size in larger ones.
_MAX_SUPPORT_PIXELS = 1_000_000


def bounded_support(image_rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8[H, W, 3], bool[H, W] -> the same, or the object's neighbourhood within _MAX_SUPPORT_PIXELS (its
    object then looks smaller than in the frames where it had to be scaled down: objects over ~200 px)."""
    h, w = mask.shape
    if h * w <= _MAX_SUPPORT_PIXELS or not mask.any():
        return image_rgb, mask
    # The object's box from its rows and columns (np.nonzero of a large mask would take gigabytes).
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    size = max(bottom - top, right - left) + 1
    y0, y1 = max(top - 2 * size, 0), min(bottom + 2 * size + 1, h)
    x0, x1 = max(left - 2 * size, 0), min(right + 2 * size + 1, w)
    image_rgb, mask = image_rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    scale = min(1.0, float(np.sqrt(_MAX_SUPPORT_PIXELS / mask.size)))
    if scale < 1.0:
        size_wh = (max(int(mask.shape[1] * scale), 1), max(int(mask.shape[0] * scale), 1))
        image_rgb = cv2.resize(image_rgb, size_wh, interpolation=cv2.INTER_AREA)
        # The bool mask's own bytes as 0/1 (a float copy of a 50 MP mask is 200 MB); area averaging rounds to 1
        # where at least half a scaled pixel is the object's.
        mask = cv2.resize(mask.view(np.uint8), size_wh, interpolation=cv2.INTER_AREA) >= 1
    log.info("support image of %dx%d px: learnt from the object's neighbourhood, %dx%d px", w, h,
             mask.shape[1], mask.shape[0])
    return np.ascontiguousarray(image_rgb), mask
