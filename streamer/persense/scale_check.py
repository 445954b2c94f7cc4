"""Is the frame's product at the support's scale? A check that any engine set can run, once per support.

Every engine looks for objects near the support object's size (the embedded ones within 1.6x of it). A camera
zoomed or moved since the support was taken, or a support from another lens, then gives a count that is
nonsense without any sign of it (measured on the development set's scenes: at half the scale the counts fall
to 0-50% of the truth, at twice it they rise to 1.2-5x). This check finds the scale at which the frame matches
the support object best: the support's rotation-invariant radial intensity profile (its brightness from the
centre to a little beyond its rim) is correlated (normalised, so brightness and contrast do not matter) with the
frame resized for each of a range of object scales, and each scale is scored by its ten best matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Object scales (frame object radius / support object radius) tried: quarter-octave steps from 1/4 to 8.
SCALES = 2.0 ** np.arange(-2.0, 3.01, 0.25)
# The profile reaches this many support radii from the centre (the object and a ring of its surroundings).
_EXTENT = 1.3
# Each scale is scored at this object radius in pixels: the frame is resized so that objects of that scale have it.
_WORK_RADIUS = 8.0
# Resized frames larger than this (pixels along the longer side) or smaller (shorter side) are not scored.
_MAX_SIDE, _MIN_SIDE = 1400, 24
# Best matches averaged per scale (on a frame of fewer objects, the belt's best matches come in: a low score,
# which `_CLEAR_MATCH` leaves unjudged).
_PEAKS = 10
# The best-scoring scale runs about this fraction of the true ratio (measured on the development set's scenes at
# their own scale: 0.71-1.0, mostly 0.84): the profile's outer ring is partly other objects in a dense frame.
_BIAS = 0.84
# A frame's best scale this far from the support's (after the bias), and better by this much than every scale
# near the support's, is another scale. Measured on the development and validation sets' cases resized 0.5x, 2x
# and 4x: 33 of the 41 whose counts were off by more than 30% were flagged (the others' best scale landed near the
# support's); at their own scale, of the cases with objects found, only one whose support the support checks
# already warn of (a faint nucleus on gravel).
_SMALLER, _LARGER = 0.6, 1.6
_NEAR = (0.6, 1.2)
_MARGIN = 0.05
# A best scale whose matches score below this is no clear match (a textured belt with a few items entering it,
# cut by the frame's edge: 0.57-0.61 in the flow simulator's first frames; real mismatches scored 0.70-0.98).
_CLEAR_MATCH = 0.68


# Objects of a larger radius (pixels) are profiled from samples this many rings apart in their radius.
_PROFILE_RADIUS = 128.0


@dataclass(frozen=True)
class SupportProfile:
    """profile: float64[R + 1] the support object's mean intensity at 0..R pixels from its centre; radius: its
    radius sqrt(area / pi) in pixels."""

    profile: np.ndarray
    radius: float


@dataclass(frozen=True)
class ScaleEstimate:
    """ratio: the frame's object scale over the support's (bias-corrected); score: the best scale's mean of its
    best normalised correlations; near_score: the best such score among scales near the support's."""

    ratio: float
    score: float
    near_score: float


def support_profile(image_rgb: np.ndarray, mask: np.ndarray) -> SupportProfile:
    """The radial intensity profile of the support object (uint8[H, W, 3] image, bool[H, W] mask) about its
    mask's centroid, out to `_EXTENT` radii."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    radius = float(np.sqrt(mask.sum() / np.pi))
    half = max(int(np.ceil(_EXTENT * radius)), 1)
    # A large object is sampled every `step` pixels in rings `step` wide (then read back at every pixel's
    # radius): at every pixel, a 50-megapixel support's object took hundreds of MB of index arrays here.
    step = max(int(np.ceil(radius / _PROFILE_RADIUS)), 1)
    n = half // step
    oy, ox = np.mgrid[-n : n + 1, -n : n + 1] * step
    rings = np.minimum((np.hypot(oy, ox) / step).astype(int), n).ravel()
    iy = np.clip(np.rint(cy + oy).astype(int), 0, image_rgb.shape[0] - 1)
    ix = np.clip(np.rint(cx + ox).astype(int), 0, image_rgb.shape[1] - 1)
    # Only the pixels sampled are made grey (the same values as greying the whole image first): a support of
    # 50 megapixels made a 600 MB float copy here.
    grey = image_rgb[iy, ix].astype(np.float32).mean(axis=2)
    sums = np.bincount(rings, grey.ravel(), n + 1)
    counts = np.maximum(np.bincount(rings, minlength=n + 1), 1)
    profile = sums / counts
    if step > 1:
        profile = np.interp(np.arange(half + 1), np.arange(n + 1) * step + (step - 1) / 2, profile)
    return SupportProfile(profile, radius)


def _template(support: SupportProfile) -> np.ndarray:
    """The profile drawn as a disc of `_WORK_RADIUS` pixels' radius: float32[2h + 1, 2h + 1]."""
    half = int(np.ceil(_EXTENT * _WORK_RADIUS))
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    at = np.hypot(oy, ox) * (support.radius / _WORK_RADIUS)
    return np.interp(at, np.arange(len(support.profile)), support.profile).astype(np.float32)


def scale_scores(image_rgb: np.ndarray, support: SupportProfile) -> np.ndarray:
    """float[len(SCALES)]: per scale, the mean of the `_PEAKS` best normalised correlations of the frame with
    the support's profile at that scale (-1 where the frame cannot be scored at it)."""
    grey = image_rgb.astype(np.float32).mean(axis=2)
    template = _template(support)
    peak_window = np.ones(template.shape, np.uint8)
    scores = np.full(len(SCALES), -1.0)
    for k, scale in enumerate(SCALES):
        factor = _WORK_RADIUS / (support.radius * scale)
        size = (int(round(grey.shape[1] * factor)), int(round(grey.shape[0] * factor)))
        if max(size) > _MAX_SIDE or min(size) < max(_MIN_SIDE, template.shape[0] + 1):
            continue
        resized = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        # Beyond the frame counts as its typical grey, so objects cut by its edge (items entering a belt) match.
        half = template.shape[0] // 2
        padded = cv2.copyMakeBorder(resized, half, half, half, half, cv2.BORDER_CONSTANT,
                                    value=float(np.median(resized)))
        ncc = cv2.matchTemplate(padded, template, cv2.TM_CCOEFF_NORMED)
        peaks = ncc[ncc >= cv2.dilate(ncc, peak_window)]
        if peaks.size:
            scores[k] = float(np.sort(peaks)[::-1][:_PEAKS].mean())
    return scores


def frame_scale(image_rgb: np.ndarray, support: SupportProfile) -> ScaleEstimate | None:
    """The frame's object scale relative to the support's, or None where no scale could be scored."""
    scores = scale_scores(image_rgb, support)
    if scores.max() < -0.5:
        return None
    ratios = SCALES / _BIAS
    near = (ratios >= _NEAR[0]) & (ratios <= _NEAR[1]) & (scores > -0.5)
    best = int(np.argmax(scores))
    near_score = float(scores[near].max()) if near.any() else -1.0
    return ScaleEstimate(float(ratios[best]), float(scores[best]), near_score)


def scale_mismatch(estimate: ScaleEstimate | None, found: bool = True) -> str | None:
    """A warning when the frame's objects look much larger or smaller than the support object, else None.

    found: whether the pipeline found objects of the kind in the frame (else the warning says that the frame's
    most support-like things are at another scale, which may also be another product)."""
    if estimate is None or not (estimate.ratio <= _SMALLER or estimate.ratio >= _LARGER):
        return None
    if estimate.score < _CLEAR_MATCH:
        return None  # no scale matches the support clearly: nothing to say which is the objects'

    if estimate.score - estimate.near_score < _MARGIN:
        return None
    looks = "larger" if estimate.ratio > 1 else "smaller"
    if not found:
        return (
            f"nothing of the support's kind found, and the frame's most support-like things look about "
            f"{estimate.ratio:.1f}x the support object's size ({looks}): if the camera zoomed or moved, take the "
            "support from its current view"
        )
    return (
        f"the objects in this frame look about {estimate.ratio:.1f}x the support object's size ({looks}): the "
        "engines look for objects near the support's size, so counts will be wrong; take the support from this "
        "camera's current view"
    )
