"""Checks of a one-shot support that catch the examples no engine can learn from.

`support_problems` returns the warnings a person should read before trusting the counts; a support that
cannot work at all (an object of a few pixels) is a UserError.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.errors import UserError

# Fewer mask pixels than this describe no object; fewer than _SMALL_OBJECT, an unreliable one.
_MIN_PIXELS = 9
_SMALL_OBJECT = 64
# Intensity standard deviation (0-255) over the object and its surroundings below which the support is flat.
_FLAT = 2.0
# A support image more than this many times larger than the frame (linear size), or this many times smaller.
_LARGER_SUPPORT = 1.5
_SMALLER_SUPPORT = 10.0
# The median gradient on the object's outline over the median around it, below which the outline does not stand
# out (measured: dark coins on gravel that found gravel 0.87-1.04; coins on grass that worked 1.26).
_WEAK_OUTLINE = 1.15
# Objects of a larger radius (pixels) are checked at the size that makes it this.
_CHECK_RADIUS = 128.0


def support_problems(image_rgb: np.ndarray, mask: np.ndarray) -> list[str]:
    """Warnings about a support image uint8[H, W, 3] and mask bool[H, W]; raises UserError when unusable."""
    area = int(mask.sum())
    if area < _MIN_PIXELS:
        raise UserError(
            f"the support mask covers {area} pixel(s): mark the whole example object (at least {_MIN_PIXELS})"
        )
    problems = []
    if area < _SMALL_OBJECT:
        problems.append(f"the support object is only {area} pixels: counts of such small objects are unreliable")
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        problems.append("the support object touches the image border: a cut-off example may not look like a whole one")
    ys, xs = np.nonzero(mask)
    pad = max(int(0.5 * max(np.ptp(xs), np.ptp(ys))), 2)
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, mask.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, mask.shape[1])
    crop, crop_mask = image_rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    radius = float(np.sqrt(area / np.pi))
    if radius > _CHECK_RADIUS:
        # A large object is checked at a reduced size (the outline's contrast is a ratio of gradients, about
        # the same at any size): at full size a 50-megapixel support took 20 s and 130 MB here.
        scale = _CHECK_RADIUS / radius
        size = (max(int(crop.shape[1] * scale), 1), max(int(crop.shape[0] * scale), 1))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        crop_mask = cv2.resize(crop_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    grey = crop.astype(np.float32).mean(axis=2)
    if float(grey.std()) < _FLAT:
        problems.append("the support mask lies on a uniform region: there is no object to learn from there")
        return problems
    ratio = outline_contrast(grey, crop_mask) if crop_mask.any() else float("inf")
    if ratio < _WEAK_OUTLINE:
        problems.append(
            f"the support object's outline is hardly stronger than the edges around it ({ratio:.2f}x): counts may "
            "follow the background's texture; pick an example with a clearer outline"
        )
    return problems


def outline_contrast(grey: np.ndarray, mask: np.ndarray) -> float:
    """The median gradient magnitude on the mask's outline over the median in its surroundings (beyond a band
    of a fifth of the object's radius): about 1 where the object does not stand out from the background."""
    smooth = cv2.GaussianBlur(grey, (0, 0), 1.0)
    magnitude = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    inside = mask.astype(np.uint8)
    ring = np.ones((3, 3), np.uint8)
    outline = cv2.dilate(inside, ring).astype(bool) & ~cv2.erode(inside, ring).astype(bool)
    band = max(int(round(0.2 * np.sqrt(mask.sum() / np.pi))), 2)
    near = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)))
    around = ~near.astype(bool)
    if not around.any() or not outline.any():
        return float("inf")
    return float(np.median(magnitude[outline]) / max(float(np.median(magnitude[around])), 1e-6))


def size_mismatch(support_hw: tuple[int, int], frame_hw: tuple[int, int]) -> str | None:
    """A warning when the support image is much larger than the frame (then it is not the camera's view,
    and its objects are at another scale) or very much smaller (a crop is normal; a thumbnail is not)."""
    ratio = float(np.sqrt((frame_hw[0] * frame_hw[1]) / max(support_hw[0] * support_hw[1], 1)))
    if ratio < 1 / _LARGER_SUPPORT or ratio > _SMALLER_SUPPORT:
        return (
            f"the frame ({frame_hw[1]}x{frame_hw[0]}) and the support image ({support_hw[1]}x{support_hw[0]}) differ "
            f"{max(ratio, 1 / ratio):.1f}x in size: objects are expected at the support's scale; take the support "
            "from the camera's own view (a crop of a frame is fine)"
        )
    return None
