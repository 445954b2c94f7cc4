"""Products by category: each factory returns `make(rng) -> Item`, one product drawn at random.

Every product varies the way one product line does on a belt: any rotation, +-15% scale, +-10% brightness,
and a fresh window of its surface photograph; its shape parameters are drawn from the ranges given.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from streamer.devset import shapes as sh
from streamer.devset.belt import Item

Make = Callable[[np.random.Generator], Item]
ShapeFn = Callable[[np.random.Generator], list]
RGB = tuple[float, float, float]


def _pose(rng: np.random.Generator) -> tuple[float, float]:
    """(angle in degrees, scale): every orientation, +-15% scale."""
    return rng.uniform(0, 360), rng.uniform(0.85, 1.15)


def solid(shape: ShapeFn, surfaces: Sequence[str], colour: RGB, strength: float = 0.6, rim: float = 3.0,
          depth: float = 0.3, counted: bool = True) -> Make:
    """A matte product: `shape` filled with `colour` textured by one of `surfaces`, with a rounded rim."""

    def make(rng: np.random.Generator) -> Item:
        mask = sh.draw(shape(rng), *_pose(rng))
        h, w = mask.shape
        name = surfaces[int(rng.integers(len(surfaces)))]
        rgb = sh.textured(rng, name, h, w, colour, strength) * sh.bevel(mask, rim, depth)[..., None]
        return Item(rgb * rng.uniform(0.9, 1.1), mask, counted)

    return make


def shiny(shape: ShapeFn, surfaces: Sequence[str], colour: RGB, spots: tuple[int, int] = (1, 3)) -> Make:
    """A metal product: domed shading, a specular lobe, brushed grain from `surfaces`, highlight spots."""

    def make(rng: np.random.Generator) -> Item:
        mask = sh.draw(shape(rng), *_pose(rng))
        h, w = mask.shape
        grain = sh.window(rng, surfaces[int(rng.integers(len(surfaces)))], h, w).mean(axis=2)
        rgb = sh.metal(rng, mask, colour, grain, int(rng.integers(spots[0], spots[1] + 1)))
        return Item(rgb * rng.uniform(0.9, 1.1), mask)

    return make


def printed(shape: ShapeFn, pictures: Sequence[str], card: RGB, border: float = 4.0) -> Make:
    """A tile or box with a picture printed on it: each product gets its own window of one of `pictures`,
    drawn upright and turned with the tile (the print turns with its item)."""

    def make(rng: np.random.Generator) -> Item:
        angle, scale = _pose(rng)
        mask = sh.draw(shape(rng), 0.0, scale, margin=1)  # a belt pixel around it: the border is measured from it
        picture = pictures[int(rng.integers(len(pictures)))]
        tint = np.asarray(card, np.float32) * rng.uniform(0.92, 1.05)
        rgb = sh.printed_tile(rng, mask, picture, tuple(tint), border)
        rgb, mask = sh.turn(rgb, mask, angle)
        return Item(rgb, mask)

    return make


def tiny(surfaces: Sequence[str], colour: RGB, length: tuple[float, float], aspect: tuple[float, float]) -> Make:
    """A small seed or pellet: an ellipse whose drawn extent (its box's longer side) is 6-14 px, redrawn
    until it is (rotation and rasterisation move the extent by a pixel or two)."""

    def make(rng: np.random.Generator) -> Item:
        while True:
            major = rng.uniform(*length)
            minor = major / rng.uniform(*aspect)
            mask = sh.draw([(1, sh.ellipse(major / 2, minor / 2, n=24))], *_pose(rng), margin=0)
            ys, xs = np.nonzero(mask)
            extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
            if 6 <= extent <= 14 and min(ys.max() - ys.min(), xs.max() - xs.min()) + 1 >= 3:
                break
        mask = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        h, w = mask.shape
        rgb = sh.textured(rng, surfaces[int(rng.integers(len(surfaces)))], h, w, colour, 0.3)
        return Item(rgb * sh.bevel(mask, 1.5, 0.35)[..., None] * rng.uniform(0.9, 1.1), mask)

    return make


@lru_cache(maxsize=None)
def _coins() -> list:
    from streamer.devset.crops import coin_crops

    return coin_crops()


def coins(radius: float) -> Make:
    """A coin of scikit-image's `coins` photograph (real, with its documented mask), about `radius` px."""

    def make(rng: np.random.Generator) -> Item:
        crops = _coins()
        crop = crops[int(rng.integers(len(crops)))]
        angle, scale = _pose(rng)
        rgb, mask = sh.turn(crop.rgb.astype(np.float32) * rng.uniform(0.9, 1.1), crop.mask, angle,
                            scale * radius / max(crop.radius, 1.0))
        return Item(rgb, mask)

    return make


# --- shape draws: (rng) -> polygons, with parameters from the given ranges -----------------------------------------
def rods(length: tuple[float, float], aspect: tuple[float, float], bolts: float = 0.0) -> ShapeFn:
    """Dowels, pins, pasta (rounded rods) and, a fraction `bolts` of the time, bolts: aspect 2.5-6:1."""

    def shape(rng: np.random.Generator) -> list:
        n = rng.uniform(*length)
        w = n / rng.uniform(*aspect)
        return sh.bolt(n, w) if rng.random() < bolts else sh.stadium(n, w)

    return shape


def angular(kind: str, length: tuple[float, float], arm: tuple[float, float]) -> ShapeFn:
    """Brackets and stars: `kind` in l | t | u | star | crescent; `arm` is the thickness over the length
    (for a star the inner radius ratio, for a crescent the bite)."""

    def shape(rng: np.random.Generator) -> list:
        n, a = rng.uniform(*length), rng.uniform(*arm)
        if kind == "star":
            return sh.star(n, 5 if a < 0.45 else 6, a)
        if kind == "crescent":
            return sh.crescent(n, a)
        return {"l": sh.l_shape, "t": sh.t_shape, "u": sh.u_shape}[kind](n, n * a)

    return shape


def holed(kind: str, length: tuple[float, float], hole: tuple[float, float]) -> ShapeFn:
    """Washers, nuts, rings: `kind` in washer | hex | square; `hole` the hole's share of the diameter."""
    draw = {"washer": sh.washer, "hex": sh.hex_nut, "square": sh.square_nut}[kind]
    return lambda rng: draw(rng.uniform(*length), rng.uniform(*hole))


def blobs(kind: str, length: tuple[float, float], aspect: tuple[float, float] = (1.0, 1.0)) -> ShapeFn:
    """Convex products: `kind` in disc | ellipse | box | hexagon, longest side in `length`."""

    def shape(rng: np.random.Generator) -> list:
        n = rng.uniform(*length)
        a = rng.uniform(*aspect)
        if kind == "hexagon":
            return [(1, sh.regular(6, n / 2))]
        if kind == "box":
            return sh.rounded_box(n, n / a, n * 0.12)
        return [(1, sh.ellipse(n / 2, n / 2 / a if kind == "ellipse" else n / 2))]

    return shape
