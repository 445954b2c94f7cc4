"""Dense scenes of real object crops pasted onto real textures, with exact instance ground truth.

Objects touch and partly overlap (later ones on top), are rotated, scaled +-20%, vary in brightness, and
the whole frame is lit unevenly. Backgrounds are scikit-image's texture photographs (brick, gravel, grass),
tiled and tinted where a colour scene is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.devset.crops import Crop


@dataclass
class Scene:
    """image: uint8[H, W, 3]; labels: int32[H, W] instance ids 1..K (0 background)."""

    image: np.ndarray
    labels: np.ndarray

    @property
    def count(self) -> int:
        return int(self.labels.max())


def texture(name: str, width: int, height: int, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """A scikit-image texture photograph (`brick`, `gravel`, `grass`, ...) tiled to the frame, tinted."""
    from skimage import data

    grey = getattr(data, name)().astype(np.float32)
    reps = (-(-height // grey.shape[0]), -(-width // grey.shape[1]))
    tiled = np.tile(grey, reps)[:height, :width]
    rgb = np.dstack([tiled * t for t in tint])
    return np.clip(rgb, 0, 255).astype(np.uint8)


def dark_field(width: int, height: int, seed: int, level: float = 12.0) -> np.ndarray:
    """A fluorescence or sky background: dark, with sensor noise and a faint out-of-focus haze."""
    rng = np.random.default_rng(seed)
    haze = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 25) * 60
    noise = rng.normal(0, 3, (height, width)).astype(np.float32)
    grey = np.clip(level + haze - haze.mean() + noise, 0, 255)
    return np.dstack([grey] * 3).astype(np.uint8)


def fluorescent(crop: Crop) -> Crop:
    """A stained nucleus as a fluorescence microscope shows it: bright (green channel) where the stain is."""
    stain = 255.0 - crop.rgb.astype(np.float32).mean(axis=2)
    inside = stain[crop.mask]
    lo, hi = float(np.percentile(stain, 5)), float(inside.max()) if inside.size else 255.0
    glow = np.clip((stain - lo) / max(hi - lo, 1.0), 0, 1) * 200.0
    glow = np.where(crop.mask, np.maximum(glow, 60.0), glow * 0.3)
    rgb = np.dstack([glow * 0.25, glow, glow * 0.35])
    return Crop(np.clip(rgb, 0, 255).astype(np.uint8), crop.mask)


def _transform(crop: Crop, scale: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """(rgb float32[h, w, 3], alpha float32[h, w]) of the crop scaled and rotated on a canvas that holds it."""
    h, w = crop.mask.shape
    side = int(np.ceil(np.hypot(h, w) * scale)) + 4
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    rgb = cv2.warpAffine(crop.rgb.astype(np.float32), m, (side, side), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(crop.mask.astype(np.float32), m, (side, side), flags=cv2.INTER_LINEAR)
    return rgb, alpha


def compose(
    crops: list[Crop],
    background: np.ndarray,
    n_objects: int,
    radius: float,
    seed: int,
    spacing: float = 0.85,
    brightness: tuple[float, float] = (0.85, 1.15),
    lighting: float = 0.3,
    bright_fraction: float = 0.0,
    bright_gain: float = 3.0,
) -> Scene:
    """Paste up to `n_objects` crops (each scaled to about `radius` px, +-20%) at random places.

    Args:
        spacing: centres are at least spacing x (r_i + r_j) apart: below 1 objects touch and overlap a little.
        lighting: the uneven light's amplitude (the frame is multiplied by 1 +- lighting across it).
        bright_fraction / bright_gain: that fraction of the objects `bright_gain` times brighter (dividing
            cells in fluorescence), the rest as they are.
    """
    rng = np.random.default_rng(seed)
    height, width = background.shape[:2]
    canvas = background.astype(np.float32)
    labels = np.zeros((height, width), np.int32)
    placed: list[tuple[float, float, float]] = []
    attempts = 0
    while len(placed) < n_objects and attempts < 200 * max(n_objects, 1):
        attempts += 1
        crop = crops[int(rng.integers(len(crops)))]
        r = radius * rng.uniform(0.8, 1.2)
        x, y = rng.uniform(r, width - r), rng.uniform(r, height - r)
        if any(np.hypot(x - px, y - py) < spacing * (r + pr) for px, py, pr in placed):
            continue
        rgb, alpha = _transform(crop, r / max(crop.radius, 1.0), rng.uniform(0, 360))
        gain = rng.uniform(*brightness) * (bright_gain if rng.random() < bright_fraction else 1.0)
        side = alpha.shape[0]
        x0, y0 = int(round(x - side / 2)), int(round(y - side / 2))
        sx0, sy0 = max(-x0, 0), max(-y0, 0)
        sx1, sy1 = min(side, width - x0), min(side, height - y0)
        a = alpha[sy0:sy1, sx0:sx1, None]
        region = canvas[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1]
        region[:] = region * (1 - a) + np.clip(rgb[sy0:sy1, sx0:sx1] * gain, 0, 255) * a
        placed.append((x, y, r))
        labels[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1][a[..., 0] > 0.5] = len(placed)
    canvas *= _light_field(width, height, lighting, rng)[..., None]
    labels = _drop_hidden(labels, placed)
    return Scene(np.clip(canvas, 0, 255).astype(np.uint8), labels)


def _light_field(width: int, height: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """float32[H, W]: 1 + amplitude x a smooth field in [-1, 1] (a tilted plane plus a broad bump)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    plane = (np.cos(angle) * (xs / width - 0.5) + np.sin(angle) * (ys / height - 0.5)) * 2
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * (0.3 * max(width, height)) ** 2))
    field = 0.6 * plane + 0.8 * bump - 0.4
    return 1.0 + amplitude * np.clip(field, -1, 1)


def _drop_hidden(labels: np.ndarray, placed: list[tuple[float, float, float]], keep: float = 0.5) -> np.ndarray:
    """Objects with less than `keep` of their own area visible are no ground truth (and the ids are compacted)."""
    areas = np.bincount(labels.ravel(), minlength=len(placed) + 1).astype(np.float64)
    own = np.array([0.0] + [np.pi * r * r for _, _, r in placed])
    visible = areas >= keep * own * 0.8
    visible[0] = False
    lut = np.zeros(len(areas), np.int32)
    lut[visible] = np.arange(1, int(visible.sum()) + 1)
    return lut[labels]
