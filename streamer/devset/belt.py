"""Belts, light, and products laid out on a belt with exact per-instance truth (the visible pixels of each).

Products are pasted with a hard mask (what is painted is what is labelled), later ones on top. A layout either
keeps a gap between products or lets them touch and overlap up to a given fraction of each one's own area;
products that are not to be counted (another colour) are laid out the same way but left out of the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from streamer.devset.shapes import photo


@dataclass
class Item:
    """rgb: float32[h, w, 3] (only the masked pixels are used); mask: bool[h, w]; counted: in the truth."""

    rgb: np.ndarray
    mask: np.ndarray
    counted: bool = True


@dataclass
class Laid:
    """image: uint8[H, W, 3]; labels: int32[H, W] visible pixels of the counted products, 1..N in laying order;
    own: int64[N + 1] each counted product's whole area in px (own[0] unused), for occlusion checks."""

    image: np.ndarray
    labels: np.ndarray
    own: np.ndarray

    @property
    def count(self) -> int:
        return int(self.labels.max())


@dataclass(frozen=True)
class Light:
    """The camera's light on a scene: gain (brightness x), temperature (-1 cool blue .. +1 warm orange), and
    gradient (the frame x 1 +- gradient along a random direction: a lamp at one side of the belt)."""

    gain: float = 1.0
    temperature: float = 0.0
    gradient: float = 0.0


def plain_belt(rng: np.random.Generator, width: int, height: int, colour: tuple[float, float, float],
               noise: float = 3.0) -> np.ndarray:
    """float32[H, W, 3]: a rubber belt: one colour with soft blotches, streaks along the running direction (x)
    and fine noise."""
    # Both smooth fields are made at 1/8 scale (along x for the streaks) and resized: the same look, ~50x cheaper.
    small = cv2.GaussianBlur(rng.standard_normal((height // 8 + 1, width // 8 + 1), np.float32), (0, 0), 30 / 8)
    blotch = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    blotch /= max(float(blotch.std()), 1e-6)
    thin = rng.standard_normal((height, width // 8 + 1), np.float32)
    streaks = cv2.resize(cv2.GaussianBlur(thin, (0, 0), sigmaX=5, sigmaY=0.7), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    streaks /= max(float(streaks.std()), 1e-6)
    grey = 1.0 + 0.04 * blotch + 0.03 * streaks
    base = np.asarray(colour, np.float32) * grey[..., None]
    return base + noise * rng.standard_normal((height, width, 1), np.float32)


def texture_belt(rng: np.random.Generator, name: str, width: int, height: int,
                 colour: tuple[float, float, float], strength: float = 0.7) -> np.ndarray:
    """float32[H, W, 3]: a textured surface: a photograph's luminance tiled at its own scale (so stones and
    bricks keep their real size), from a random offset, modulating `colour`."""
    grey = photo(name).mean(axis=2)
    reps = (-(-height // grey.shape[0]) + 1, -(-width // grey.shape[1]) + 1)
    tiled = np.tile(grey, reps)
    y, x = int(rng.integers(0, grey.shape[0])), int(rng.integers(0, grey.shape[1]))
    tiled = tiled[y : y + height, x : x + width]
    relative = tiled / max(float(tiled.mean()), 1.0) - 1.0
    return np.asarray(colour, np.float32) * (1.0 + strength * np.clip(relative, -1, 1.5))[..., None]


def lay(
    background: np.ndarray,
    make: Callable[[np.random.Generator], Item],
    n: int,
    rng: np.random.Generator,
    occlusion: float = 0.0,
    gap: int = 3,
    tries: int = 80,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay up to `n` products from `make` at random places, wholly inside the frame.

    Args:
        background: float32[H, W, 3].
        occlusion: 0 keeps `gap` px of belt between products; above 0 products may touch and overlap, each
            keeping at least 1 - occlusion of its own area visible (the later product is on top).
    Returns:
        (float32[H, W, 3] canvas, int32[H, W] labels of the counted products 1..N, int64[N + 1] own areas).
    """
    canvas = background.astype(np.float32).copy()
    height, width = canvas.shape[:2]
    ids = np.zeros((height, width), np.int32)  # every product, counted or not
    own = np.zeros(n + 1, np.int64)  # whole area of product k (k = 1.. laid)
    visible = np.zeros(n + 1, np.int64)  # its pixels not hidden by later products
    counted = np.zeros(n + 1, bool)
    laid = 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1)) if gap > 0 else None
    budget = tries * max(n, 1)
    while laid < n and budget > 0:
        item = make(rng)
        h, w = item.mask.shape
        if h >= height or w >= width:
            budget -= tries
            continue
        keep_off = item.mask
        if occlusion <= 0 and kernel is not None:
            padded = np.pad(item.mask.astype(np.uint8), gap)
            keep_off = cv2.dilate(padded, kernel).astype(bool)
        for _ in range(min(tries, budget)):
            budget -= 1
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            if occlusion <= 0:
                oy, ox = max(y - gap, 0), max(x - gap, 0)
                sy, sx = oy - (y - gap), ox - (x - gap)
                zone = ids[oy : y + h + gap, ox : x + w + gap]
                if zone[keep_off[sy : sy + zone.shape[0], sx : sx + zone.shape[1]]].any():
                    continue
            else:
                under = np.bincount(ids[y : y + h, x : x + w][item.mask], minlength=n + 1)
                under[0] = 0
                after = visible - under
                if np.any(after[1:] < (1.0 - occlusion) * own[1:]):
                    continue
                visible = after
            laid += 1
            ids[y : y + h, x : x + w][item.mask] = laid
            canvas[y : y + h, x : x + w][item.mask] = item.rgb[item.mask]
            own[laid] = visible[laid] = int(item.mask.sum())
            counted[laid] = item.counted
            break
    # The truth: counted products only, numbered 1..N in laying order.
    lut = np.zeros(n + 1, np.int32)
    lut[counted] = np.arange(1, int(counted.sum()) + 1)
    return canvas, lut[ids], np.concatenate([[0], own[counted]])


def lit(canvas: np.ndarray, light: Light, rng: np.random.Generator, noise: float = 2.0, blur: float = 0.6) -> np.ndarray:
    """uint8[H, W, 3]: the scene as the camera sees it: light's colour temperature, gain and gradient, a
    little optical blur and sensor noise. The truth does not change (light moves no pixel)."""
    height, width = canvas.shape[:2]
    t = light.temperature
    colour = np.array([1.0 + 0.18 * t, 1.0 + 0.02 * t, 1.0 - 0.22 * t], np.float32)
    a = rng.uniform(0, 2 * np.pi)
    xs = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    ys = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    ramp = (np.cos(a) * xs + np.sin(a) * ys) * 2
    field = light.gain * (1.0 + light.gradient * np.clip(ramp, -1, 1))
    image = canvas.astype(np.float32) * field[..., None] * colour
    if blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    image += noise * rng.standard_normal(image.shape, np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def scene(background: np.ndarray, layers: list[tuple[Callable[[np.random.Generator], Item], int]], light: Light,
          seed: int, occlusion: float = 0.0, gap: int = 3) -> Laid:
    """A belt scene: the products of each `(make, n)` layer laid out, then lit. Several layers share one
    layout (their items interleave at random: one `make` drawing from the layers by their n)."""
    rng = np.random.default_rng(seed)
    total = sum(n for _, n in layers)
    weights = np.asarray([n for _, n in layers], np.float64) / max(total, 1)

    def mixed(r: np.random.Generator) -> Item:
        return layers[int(r.choice(len(layers), p=weights))][0](r)

    canvas, labels, own = lay(background, mixed, total, rng, occlusion, gap)
    return Laid(lit(canvas, light, rng), labels, own)
