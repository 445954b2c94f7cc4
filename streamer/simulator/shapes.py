"""Product shapes other than the default ellipse: rods (dowels, pins), L-brackets, tees, stars and washers.

Each is a sprite of the target colour family with the same look as the ellipses (a rounded profile that darkens
towards the rim, a soft highlight from the upper left, fine speckle) and an exact mask: the mask is what is drawn,
so the scene's truth stays exact, and a washer's hole is not in its mask (the belt shows through, label 0).

Every shape has about the area of a target disk of the given radius, so a scene's density (objects per frame)
means the same for every shape. Shapes too long for disk spacing are placed by their masks (`place_sprites`).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import cv2
import numpy as np

from streamer.simulator.sprites import TARGET_HSV, Sprite, product_rgb, target_sprite

ProductShape = Literal["ellipse", "rod", "bracket", "tee", "star", "washer", "mixed"]
PRODUCT_SHAPES: tuple[str, ...] = get_args(ProductShape)
# "mixed": every product is one of these, drawn at random (elongated and angular ones).
MIXED_SHAPES = ("rod", "bracket", "tee", "star")
# A rod's length over its width (a stadium: a rectangle with round ends).
ROD_ASPECT = (2.5, 6.0)
# Sub-pixel precision of polygon fills (cv2's `shift`): vertices at 1/16 px.
_SHIFT = 4

SceneName = Literal["default", "shapes", "products"]
# Named scenes: simulator options a scene stands for (options given beside it win). "shapes": elongated and
# angular products (rods, L-brackets, tees, stars) with the blue-teal rectangles as the other kind. "products": several
# products and a look-alike (streamer.simulator.mix).
SCENES: dict[str, dict[str, object]] = {
    "default": {},
    "shapes": {"shape": "mixed", "objects": 50, "distractors": 8},
    # Three products and a look-alike of one of them (streamer.simulator.mix.PRODUCTS_MIX), with truth per kind.
    "products": {"mix": True, "objects": 80},
}


def check_shape(shape: str) -> str:
    """`shape` if it is one of PRODUCT_SHAPES, else ValueError naming them."""
    if shape not in PRODUCT_SHAPES:
        raise ValueError(f"unknown product shape {shape!r}; choose one of {', '.join(PRODUCT_SHAPES)}")
    return shape


def product_sprite(rng: np.random.Generator, radius: float, shape: str,
                   hsv: tuple[float, float, float] = TARGET_HSV) -> Sprite:
    """One product of `shape` with about the area of a disk of `radius` pixels, of colour `hsv` (default amber).

    "ellipse" is the default target sprite itself (same random draws, so default scenes are unchanged)."""
    check_shape(shape)
    if shape == "ellipse":
        return target_sprite(rng, radius, hsv)
    if shape == "mixed":
        shape = MIXED_SHAPES[int(rng.integers(len(MIXED_SHAPES)))]
    area = math.pi * radius * radius * rng.uniform(0.85, 1.1)
    theta = rng.uniform(0, 2 * math.pi)
    if shape == "rod":
        mask = _rod_mask(rng, area, theta)
    elif shape == "washer":
        mask = _washer_mask(rng, area)
    else:
        mask = _polygon_mask(_polygon(rng, shape, area), theta)
    return _shaded(rng, mask, radius, hsv)


def _grid(half: int) -> tuple[np.ndarray, np.ndarray]:
    """float32[2h+1, 2h+1] x and y offsets from the patch's centre pixel."""
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    return xs, ys


def _rod_mask(rng: np.random.Generator, area: float, theta: float) -> np.ndarray:
    """bool[s, s] stadium of `area` px with length / width in ROD_ASPECT, its axis at angle theta."""
    aspect = rng.uniform(*ROD_ASPECT)
    # Stadium area = (L - W) W + pi W^2 / 4 with L = aspect W.
    width = math.sqrt(area / (aspect - 1.0 + math.pi / 4.0))
    core = (aspect - 1.0) * width / 2.0  # half the straight part's length
    half = int(math.ceil(core + width / 2.0)) + 2
    xs, ys = _grid(half)
    c, s = math.cos(theta), math.sin(theta)
    along = np.clip(xs * c + ys * s, -core, core)
    # Distance to the axis segment: a pixel centre within W / 2 of it is the rod's.
    dist = np.hypot(xs - along * c, ys - along * s)
    return dist <= width / 2.0


def _washer_mask(rng: np.random.Generator, area: float) -> np.ndarray:
    """bool[s, s] ring of `area` px; the hole (a third to a half of the outer radius) is background."""
    inner = rng.uniform(0.35, 0.5)
    outer = math.sqrt(area / (math.pi * (1.0 - inner * inner)))
    half = int(math.ceil(outer)) + 2
    xs, ys = _grid(half)
    rho = np.hypot(xs, ys)
    return (rho <= outer) & (rho >= inner * outer)


def _polygon(rng: np.random.Generator, shape: str, area: float) -> np.ndarray:
    """float64[N, 2] vertices (x, y) of an unrotated bracket, tee or star, centred on its box, of `area` px."""
    if shape == "bracket":  # an L: two arms of thickness t
        b, t = rng.uniform(0.8, 1.0), rng.uniform(0.25, 0.32)
        unit = np.array([(0, 0), (1, 0), (1, t), (t, t), (t, b), (0, b)], np.float64)
        unit_area = t * (1 + b - t)
    elif shape == "tee":  # a bar of length 1 and a stem of length b below its middle
        b, t = rng.uniform(0.85, 1.05), rng.uniform(0.25, 0.32)
        l, r = 0.5 - t / 2, 0.5 + t / 2
        unit = np.array([(0, 0), (1, 0), (1, t), (r, t), (r, b), (l, b), (l, t), (0, t)], np.float64)
        unit_area = t + (b - t) * t
    elif shape == "star":  # five points; the inner radius makes it clearly concave
        inner = rng.uniform(0.42, 0.5)
        k = np.arange(10)
        rho = np.where(k % 2 == 0, 1.0, inner)
        ang = -math.pi / 2 + k * math.pi / 5
        unit = np.stack([rho * np.cos(ang), rho * np.sin(ang)], axis=1)
        unit_area = 5 * inner * math.sin(math.pi / 5)
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    unit = unit - (unit.min(axis=0) + unit.max(axis=0)) / 2
    return unit * math.sqrt(area / unit_area)


def _polygon_mask(vertices: np.ndarray, theta: float) -> np.ndarray:
    """bool[s, s] the polygon float64[N, 2] rotated by theta about (0, 0), filled at sub-pixel precision."""
    c, s = math.cos(theta), math.sin(theta)
    rotated = vertices @ np.array([[c, s], [-s, c]])
    half = int(math.ceil(np.abs(rotated).max())) + 2
    size = 2 * half + 1
    mask = np.zeros((size, size), np.uint8)
    # Pixel centres are at integers; the patch's centre pixel is (half, half).
    points = np.round((rotated + half) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask.astype(bool)


def _shaded(rng: np.random.Generator, mask: np.ndarray, radius: float,
            hsv: tuple[float, float, float] = TARGET_HSV) -> Sprite:
    """A sprite of bool[s, s] `mask` in the target colours: rounded like the ellipses (darker rim), lit from the upper
    left, speckled. Pixels outside the mask are never drawn, so the mask is the exact truth."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    # Depth 0 at the rim, 1 on the ridge: the cross-section of a rounded bar of the shape's thickness.
    depth = np.clip(inside / max(float(inside.max()), 1.0), 0.0, 1.0)
    shade = 0.5 + 0.5 * np.sqrt(1.0 - (1.0 - depth) ** 2)
    # Light from the upper left: the side of each bar facing it is brighter (the outward normal is -grad depth).
    gy, gx = np.gradient(cv2.GaussianBlur(depth.astype(np.float32), (0, 0), 1.0))
    lit = np.clip((gx + gy) / math.sqrt(2.0) * float(inside.max()) * 0.5, -1.0, 1.0)
    highlight = 0.18 * np.exp(-((1.0 - depth) / 0.35) ** 2) + 0.08 * lit
    rgb = product_rgb(rng, shade, highlight, radius, hsv)
    rgb = np.where(mask[..., None], rgb, 0.0)
    half = mask.shape[0] // 2
    return Sprite(rgb.clip(0, 255).astype(np.uint8), mask, float(half), float(half))


def place_sprites(
    rng: np.random.Generator,
    masks: list[np.ndarray],
    width: int,
    height: int,
    touching: bool,
    occlusion: bool,
    period_x: float | None,
) -> np.ndarray:
    """Centres float64[N, 2] for sprites of bool[s, s] `masks` (centred patches), by their pixels, not by disks.

    A rod's enclosing disk is several times its area, so disk spacing would leave most of a dense scene empty.
    Here a sprite may go where its mask meets no other (touching: the free spot with most contact to a neighbour is
    chosen), or with `occlusion`, now and then, overlap up to a quarter of its area. With `period_x` x wraps (the
    conveyor loop); otherwise each sprite lies inside the frame. Sprites that find no room are left at NaN.
    """
    n = len(masks)
    wrap = int(math.ceil(period_x)) if period_x else None
    occupied = np.zeros((height, wrap or width), bool)
    centres = np.full((n, 2), np.nan, np.float64)
    placed: list[int] = []
    batch = 24
    for k, mask in enumerate(masks):
        half = mask.shape[0] // 2
        area = int(mask.sum())
        # The ring just outside the mask: occupied pixels there are contact with a neighbour.
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~mask
        x_lo, x_hi = (0.0, float(wrap)) if wrap else (half, width - 1 - half)
        y_lo, y_hi = half, height - 1 - half
        if x_hi < x_lo or y_hi < y_lo:
            continue
        for _ in range(60):
            mode = rng.random()
            if placed and touching and mode < 0.65:
                j = np.asarray(placed)[rng.integers(len(placed), size=batch)]
                reach = np.array([masks[i].shape[0] // 2 for i in j]) + half
                d = reach * rng.uniform(0.3, 0.9, batch)
                ang = rng.uniform(0, 2 * math.pi, batch)
                cand = centres[j] + np.stack([d * np.cos(ang), d * np.sin(ang)], axis=1)
            else:
                cand = np.stack([rng.uniform(x_lo, x_hi, batch), rng.uniform(y_lo, y_hi, batch)], axis=1)
            limit = int(0.25 * area) if occlusion and mode < 0.15 else 0
            best, best_contact = None, -1
            for cx, cy in np.round(cand).astype(int):
                if wrap:
                    cx %= wrap
                elif not x_lo <= cx <= x_hi:
                    continue
                if not y_lo <= cy <= y_hi:
                    continue
                window = _window(occupied, cx, cy, half, wrap)
                if np.count_nonzero(window & mask) > limit:
                    continue
                contact = int(np.count_nonzero(window & ring))
                if contact > best_contact:
                    best, best_contact = (cx, cy), contact
                if not touching:
                    break
            if best is not None:
                centres[k] = best
                placed.append(k)
                if wrap:
                    _mark_wrapped(occupied, mask, best[0], best[1], half, wrap)
                else:
                    _window(occupied, best[0], best[1], half, wrap)[...] |= mask
                break
    return centres


def _window(occupied: np.ndarray, cx: int, cy: int, half: int, wrap: int | None) -> np.ndarray:
    """bool[2h+1, 2h+1] of `occupied` around (cx, cy): a view, or with `wrap` a copy with x taken mod wrap."""
    rows = slice(cy - half, cy + half + 1)
    if wrap:
        cols = np.arange(cx - half, cx + half + 1) % wrap
        return occupied[rows][:, cols]
    return occupied[rows, cx - half : cx + half + 1]


def _mark_wrapped(occupied: np.ndarray, mask: np.ndarray, cx: int, cy: int, half: int, wrap: int) -> None:
    """Set `mask`'s pixels in `occupied` at (cx, cy), x taken mod wrap."""
    cols = np.arange(cx - half, cx + half + 1) % wrap
    block = occupied[cy - half : cy + half + 1][:, cols] | mask
    occupied[cy - half : cy + half + 1, cols] = block
