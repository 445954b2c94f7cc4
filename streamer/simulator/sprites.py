"""What the simulator draws: target and distractor sprites, and the belt (numpy + cv2 only).

Targets are shaded, textured amber ellipses ("products") of one colour family with slight size, shape,
rotation and colour variation; distractors are blue-teal rectangles; the belt is dark grey with streaks
along it and mild grain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# Colour families (HSV with hue in degrees, s and v in [0, 1]).
TARGET_HSV = (28.0, 0.78, 0.88)
DISTRACTOR_HSV = (205.0, 0.65, 0.75)
_BELT_GREY = 68.0


@dataclass
class Sprite:
    rgb: np.ndarray  # uint8[h, w, 3]
    mask: np.ndarray  # bool[h, w]
    cx: float  # sprite centre inside the patch (x, y)
    cy: float
    mask_u8: np.ndarray = field(init=False, repr=False)  # the mask as OpenCV's masked copy takes it

    def __post_init__(self) -> None:
        self.mask_u8 = self.mask.astype(np.uint8)


def paste(image: np.ndarray, owner: np.ndarray, sprite: Sprite, cx: float, cy: float, value: int) -> bool:
    """Draw `sprite` centred at (cx, cy) into uint8[H, W, 3] `image`, and `value` into int32[H, W] `owner` where it
    lands (later pastes cover earlier ones) -> whether any of it is in the frame."""
    h, w = owner.shape
    x0, y0 = int(round(cx - sprite.cx)), int(round(cy - sprite.cy))
    sh, sw = sprite.mask.shape
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + sw, w), min(y0 + sh, h)
    if ax1 <= ax0 or ay1 <= ay0:
        return False
    sy, sx = slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0)
    # OpenCV's masked copy and fill, not numpy's copyto: several times faster on sprite-sized patches, and they
    # release Python's lock, so a simulated camera read on its own thread does not hold up the pipeline.
    m = sprite.mask_u8[sy, sx]
    cv2.copyTo(sprite.rgb[sy, sx], m, image[ay0:ay1, ax0:ax1])
    owner_patch = owner[ay0:ay1, ax0:ax1]
    owner_patch[sprite.mask[sy, sx]] = value
    return True


class SensorNoise:
    """A few frames of sensor noise (normal, integer levels), drawn once and added in turn with saturation.

    Kept as its positive and negative parts, so adding it is two saturating uint8 passes rather than a round
    trip through int16 (the simulator is a camera: its cost should not show in the pipeline's figures)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 3.0, frames: int = 3):
        noise = [rng.normal(0, sigma, shape).astype(np.int16) for _ in range(frames)]
        self._up = [np.clip(n, 0, 255).astype(np.uint8) for n in noise]
        self._down = [np.clip(-n, 0, 255).astype(np.uint8) for n in noise]

    def add(self, image: np.ndarray, index: int) -> np.ndarray:
        """uint8 image -> a new uint8 image with noise frame `index` (mod frames) added, clipped to 0..255."""
        k = index % len(self._up)
        out = cv2.add(image, self._up[k])
        return cv2.subtract(out, self._down[k], dst=out)


def hsv_to_rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    pixel = np.array([[[h_deg / 2.0, s * 255.0, v * 255.0]]], np.float32).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def product_rgb(rng: np.random.Generator, shade: np.ndarray, highlight: np.ndarray, radius: float,
                hsv: tuple[float, float, float] = TARGET_HSV) -> np.ndarray:
    """A product's surface, float64[h, w, 3] RGB (not clipped): its colour (`hsv`, default amber), varied a little per
    item (three draws of `rng`), times the shading, plus the highlight and a speckle of the item's scale (`radius`)."""
    base = hsv_to_rgb(
        hsv[0] + rng.uniform(-5, 5),
        hsv[1] + rng.uniform(-0.08, 0.08),
        hsv[2] + rng.uniform(-0.08, 0.06),
    )
    speckle = cv2.GaussianBlur(rng.normal(0, 1, shade.shape).astype(np.float32), (0, 0), max(radius / 12, 0.6))
    speckle *= 9.0 / max(float(speckle.std()), 1e-6)
    return base[None, None, :] * shade[..., None] + 255.0 * highlight[..., None] + speckle[..., None]


def target_sprite(rng: np.random.Generator, radius: float, hsv: tuple[float, float, float] = TARGET_HSV) -> Sprite:
    """A shaded, speckled ellipse of the target colour family (or `hsv`); its rim is darker (rounded product)."""
    a = radius * rng.uniform(1.0, 1.18)
    b = radius * rng.uniform(0.85, 1.0)
    theta = rng.uniform(0, math.pi)
    half = int(math.ceil(max(a, b))) + 2
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    c, s = math.cos(theta), math.sin(theta)
    u = (xs * c + ys * s) / a
    v = (-xs * s + ys * c) / b
    rho2 = u * u + v * v
    mask = rho2 <= 1.0
    shade = 0.5 + 0.5 * np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
    hx, hy = -0.35 * a, -0.35 * b
    highlight = 0.25 * np.exp(-((xs - hx) ** 2 + (ys - hy) ** 2) / (2 * (0.3 * radius) ** 2))
    rgb = product_rgb(rng, shade, highlight, radius, hsv)
    return Sprite(rgb.clip(0, 255).astype(np.uint8), mask, float(half), float(half))


def distractor_sprite(rng: np.random.Generator, radius: float, hue: float = DISTRACTOR_HSV[0]) -> Sprite:
    """A blue-teal (or `hue`) rotated rectangle with the area of a target disk and a flat bevelled shading."""
    aspect = rng.uniform(1.6, 2.2)
    area = math.pi * radius * radius * rng.uniform(0.85, 1.1)
    w = math.sqrt(area * aspect)
    h = area / w
    theta = rng.uniform(0, math.pi)
    half = int(math.ceil(math.hypot(w, h) / 2)) + 2
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    c, s = math.cos(theta), math.sin(theta)
    u = np.abs(xs * c + ys * s) / (w / 2)
    v = np.abs(-xs * s + ys * c) / (h / 2)
    mask = (u <= 1.0) & (v <= 1.0)
    edge = np.clip(1.0 - np.maximum(u, v), 0, 1)
    shade = 0.7 + 0.3 * np.clip(edge * 4, 0, 1)
    base = hsv_to_rgb(hue + rng.uniform(-6, 6), DISTRACTOR_HSV[1], DISTRACTOR_HSV[2])
    noise = rng.normal(0, 4.0, xs.shape).astype(np.float32)
    rgb = base[None, None, :] * shade[..., None] + noise[..., None]
    return Sprite(rgb.clip(0, 255).astype(np.uint8), mask, float(half), float(half))


def belt(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """uint8[H, W, 3] belt: dark grey, streaks along the belt (x), mild grain; periodic in x."""
    pad = 16
    streak = rng.normal(0, 1, (height, width // 8 + 1)).astype(np.float32)
    streak = cv2.resize(streak, (width, height), interpolation=cv2.INTER_LINEAR)
    grain = rng.normal(0, 1, (height, width)).astype(np.float32)
    # Wrap-pad before blurring so the texture has no seam where the conveyor wraps around.
    grain = np.concatenate([grain[:, -pad:], grain, grain[:, :pad]], axis=1)
    grain = cv2.GaussianBlur(grain, (0, 0), 1.0)[:, pad:-pad]
    grey = _BELT_GREY + 5.0 * streak + 6.0 * grain
    tint = np.array([0.97, 1.0, 1.04], np.float32)
    return (grey[..., None] * tint).clip(0, 255).astype(np.uint8)
