"""Another light than the support's: a frame whose objects the engines found but whose match quality is below the
presence threshold is looked at again under the support's light.

A support taken under one lamp and a camera under another (warmer, cooler, brighter: a plant's day and night
light, or the support from another line) moves every colour of the frame: grey coins turn blue or beige, and
colour tests and the similarity to the prototype call them another product. The objects the engines found
anyway (by their shape and outline) tell how the light moved: the channel gains that take their median colour to
the support object's. Where those gains are a change of light, as a lamp's colour temperature and brightness
move colours (red and blue apart, green between; within bounds), the frame is relit by them and segmented again;
any other change (a green item found where the support is red) is a change of product, and the frame stands.
"""

from __future__ import annotations

import logging
from typing import Callable

import cv2
import numpy as np

from streamer.persense.frames import Found
from streamer.types import Instance

log = logging.getLogger(__name__)

# Relight only from this many objects found (fewer tell too little of the light) ...
_MIN_OBJECTS = 1
# ... and only for supports whose inner radius (the largest circle inside, pixels) is over this: the engines judge
# a frame's shapes from this size on (engines.anyshape.routed's blobs), so the objects found are the product's kind
# by their shape; a small blob is told mostly by its colour, and relit to it any blob would be one (the
# development set's galaxy support, inner radius 8.4, relit a frame of coins on gravel: 0 -> 519 counted).
_MIN_INNER_RADIUS = 10.0
# A change of light: brightness within this factor either way ...
_MAX_BRIGHTNESS = 2.0
# ... and a colour cast (the gains over their geometric mean) of at most this factor per channel, with red and
# blue moved apart (a colour temperature) and green within _GREEN of the middle. The category development set's
# lights span x0.6-1.56 brightness and casts of (1.14, 1.02, 0.82) warm to (0.86, 0.98, 1.18) cool.
_MAX_CAST = 1.5
_GREEN = 1.1
# Looks at a frame relit to the support's light at most, each with the light estimated from the previous look's
# objects (under a strong cast a first look finds the least tinted objects, not the typical ones: the category
# development set's coins under warm bright light, 1 object at first, 60 at the second look, 57 of 60 at the third).
_ROUNDS = 3
# Gains all within this of 1: the light is the support's, nothing to relight.
_SAME_LIGHT = 1.04
# The support object's colour: its pixels at least this far inside its outline (the rim blends with the belt).
_RIM = 2


def support_colour(image_rgb: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """uint8[H, W, 3] RGB and bool[H, W] the support object's mask -> float64[3] the median colour inside it, the
    colour a frame is relit to; None where the support is too small for relighting (see _MIN_INNER_RADIUS)."""
    mask8 = np.pad(np.asarray(mask, np.uint8), 1)
    if float(cv2.distanceTransform(mask8, cv2.DIST_L2, 5).max()) <= _MIN_INNER_RADIUS:
        return None
    inside = cv2.erode(np.asarray(mask, np.uint8), np.ones((2 * _RIM + 1,) * 2, np.uint8)) > 0
    if inside.sum() < 16:
        inside = np.asarray(mask, bool)
    return np.median(image_rgb[inside].reshape(-1, 3).astype(np.float64), axis=0)


def found_colour(image_rgb: np.ndarray, instances: list[Instance]) -> np.ndarray | None:
    """The median colour (float64[3]) of the found objects' pixels, or None with fewer than _MIN_OBJECTS."""
    if len(instances) < _MIN_OBJECTS:
        return None
    pixels = [image_rgb[i.bbox[1]:i.bbox[3], i.bbox[0]:i.bbox[2]][i.mask] for i in instances]
    return np.median(np.concatenate(pixels).reshape(-1, 3).astype(np.float64), axis=0)


def light_gains(support_rgb: np.ndarray, found_rgb: np.ndarray) -> np.ndarray | None:
    """float64[3] the support object's colour and the found objects' -> float64[3] the channel gains that take
    the found objects' colour to the support's, where that is a change of light (see the module's docstring);
    None where it is not one, or where the light is the support's."""
    gains = (np.asarray(support_rgb, np.float64) + 1.0) / (np.asarray(found_rgb, np.float64) + 1.0)
    brightness = float(np.exp(np.mean(np.log(gains))))
    cast = gains / brightness
    if not 1 / _MAX_BRIGHTNESS <= brightness <= _MAX_BRIGHTNESS:
        return None
    if np.any(cast > _MAX_CAST) or np.any(cast < 1 / _MAX_CAST) or not 1 / _GREEN <= cast[1] <= _GREEN:
        return None
    red, blue = np.log(cast[0]), np.log(cast[2])
    if red * blue > 0 and min(abs(red), abs(blue)) > np.log(_SAME_LIGHT):
        return None  # red and blue moved together against green: a green or a magenta product, not a lamp
    if np.all(np.abs(np.log(gains)) < np.log(_SAME_LIGHT)):
        return None
    return gains


def relit(image_rgb: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """uint8[H, W, 3] -> the frame under the support's light (channel gains, clipped)."""
    return np.clip(image_rgb.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)


def under_support_light(image_rgb: np.ndarray, found: Found, support_rgb: np.ndarray,
                        look: Callable[[np.ndarray], Found], presence_threshold: float) -> Found:
    """A frame's first look (`found`, below the presence threshold) -> the first look at the frame relit to the
    support's light that passes the threshold, the light estimated anew from each look's objects (up to _ROUNDS
    looks; `look` segments a relit frame up to the presence gate), else `found` as it was."""
    latest = found
    for _ in range(_ROUNDS):
        colour = found_colour(image_rgb, latest.instances)
        gains = None if colour is None else light_gains(support_rgb, colour)
        if gains is None:
            break
        latest = look(relit(image_rgb, gains))
        log.debug("relit by gains %s: %d objects, match quality %.2f", np.round(gains, 2), len(latest.instances),
                  latest.quality)
        if latest.quality >= presence_threshold:
            return latest
    return found
