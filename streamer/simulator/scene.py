"""Synthetic dense conveyor scenes with exact ground truth, deterministic by seed (numpy + cv2 only).

Targets are shaded, textured amber ellipses ("products") of one colour family with slight size, shape,
rotation and colour variation (or, with `shape`, rods, brackets, tees, stars or washers: shapes.py); many touch and some partly occlude each other. Distractors are another kind:
blue-teal rectangles. The background is a dark belt with streaks and mild noise. Ground truth labels hold
each target's *visible* pixels only (an occluded object loses the pixels its occluder covers).

Objects are pre-rendered once as sprites; a frame is the belt plus sprite pastes, so the conveyor runs at
hundreds of frames per second.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from streamer.simulator.shapes import check_shape, place_sprites, product_sprite
from streamer.simulator.sprites import SensorNoise, belt, distractor_sprite, paste, target_sprite

# Area fraction of the frame the objects' mean-radius disks cover at the default object radius.
_FILL = 0.42


class Scene:
    """One rendered frame and its exact ground truth.

    Attributes:
        image: uint8[H, W, 3] RGB.
        labels: int32[H, W]; 0 background, 1..count each target object's visible pixels.
        count: the number of target objects with visible pixels.
        distractors: bool[H, W] the visible pixels of objects of the other kind.
        distractor_count: the number of objects of the other kind with visible pixels.
        distractor_labels: int32[H, W]; 0 elsewhere, 1..distractor_count each such object's visible pixels.
    The maps are made when first read: a stream reading the simulator wants the image and counts only,
    and the maps cost a few milliseconds a frame.
    """

    def __init__(self, image: np.ndarray, owner: np.ndarray, is_distractor: np.ndarray):
        """owner: int32[H, W], 0 for the belt and i + 1 where object i is painted (the last paint);
        is_distractor: bool[n], per object, whether it is of the other kind."""
        n = len(is_distractor)
        visible = np.bincount(owner.ravel(), minlength=n + 1)[1 : n + 1] > 0
        targets = np.flatnonzero(visible & ~is_distractor)
        self.image = image
        self.count = int(len(targets))
        self.distractor_count = int(np.count_nonzero(visible & is_distractor))
        self._owner = owner
        self._label_of = np.zeros(n + 1, np.int32)
        self._label_of[targets + 1] = np.arange(1, len(targets) + 1, dtype=np.int32)
        self._other = np.concatenate([[False], np.asarray(is_distractor, bool)])
        others = np.flatnonzero(visible & is_distractor)
        self._distractor_of = np.zeros(n + 1, np.int32)
        self._distractor_of[others + 1] = np.arange(1, len(others) + 1, dtype=np.int32)

    @cached_property
    def labels(self) -> np.ndarray:
        return self._label_of[self._owner]

    @cached_property
    def distractors(self) -> np.ndarray:
        return self._other[self._owner]

    @cached_property
    def distractor_labels(self) -> np.ndarray:
        # Per-object truth of the other kind: what a support picked on a distractor should find.
        return self._distractor_of[self._owner]


def default_radius(width: int, height: int, n_objects: int, n_distractors: int) -> float:
    """Mean object radius (pixels) so that n objects cover about 42% of the frame."""
    n = max(n_objects + n_distractors, 1)
    r = math.sqrt(_FILL * width * height / (n * math.pi))
    return float(np.clip(r, 4.0, min(width, height) / 7.0))


def _place(
    rng: np.random.Generator,
    radii: np.ndarray,
    width: float,
    height: float,
    touching: bool,
    occlusion: bool,
    period_x: float | None,
) -> np.ndarray:
    """Centres float[N, 2] for disks of `radii`: some touching a neighbour, some overlapping one (occlusion).

    With `period_x` the x axis wraps (conveyor loop) and centres lie in [0, period_x); otherwise each disk
    lies inside the frame. Objects that find no room are left at NaN.
    """
    n = len(radii)
    centres = np.full((n, 2), np.nan, np.float64)
    placed = np.zeros(n, bool)
    batch = 48
    for k in range(n):
        r = radii[k]
        x_lo, x_hi = (0.0, period_x) if period_x else (r, width - r)
        y_lo, y_hi = r, height - r
        for _ in range(40):
            idx = np.flatnonzero(placed)
            mode = rng.random()
            if len(idx) and touching and mode < 0.65:
                j = idx[rng.integers(len(idx), size=batch)]
                overlap = occlusion and mode < 0.15
                u = rng.uniform(0.6, 0.8, batch) if overlap else rng.uniform(0.94, 1.0, batch)
                ang = rng.uniform(0, 2 * math.pi, batch)
                d = (radii[j] + r) * u
                cand = centres[j] + np.stack([d * np.cos(ang), d * np.sin(ang)], axis=1)
            else:
                j = np.full(batch, -1)
                cand = np.stack([rng.uniform(x_lo, x_hi, batch), rng.uniform(y_lo, y_hi, batch)], axis=1)
            if period_x:
                cand[:, 0] %= period_x
            ok = (cand[:, 0] >= x_lo) & (cand[:, 0] <= x_hi) & (cand[:, 1] >= y_lo) & (cand[:, 1] <= y_hi)
            if len(idx):
                dx = cand[:, None, 0] - centres[None, idx, 0]
                if period_x:
                    dx = (dx + period_x / 2) % period_x - period_x / 2
                dy = cand[:, None, 1] - centres[None, idx, 1]
                dist = np.hypot(dx, dy)
                need = (radii[None, idx] + r) * 0.94
                # The partner of an occluding placement may overlap more; every other object only touches.
                partner = idx[None, :] == j[:, None]
                ok &= np.all((dist >= need) | partner, axis=1)
            good = np.flatnonzero(ok)
            if len(good):
                centres[k] = cand[good[0]]
                placed[k] = True
                break
    return centres


class _World:
    """Objects (sprites at centres), a belt and a z-order; renders any x offset of the loop."""

    def __init__(
        self,
        width: int,
        height: int,
        n_objects: int,
        n_distractors: int,
        seed: int,
        touching: bool,
        occlusion: bool,
        object_radius: float | None,
        period_x: float | None,
        shape: str = "ellipse",
    ):
        rng = np.random.default_rng(seed)
        self.width, self.height, self.period_x = width, height, period_x
        self.radius = object_radius or default_radius(width, height, n_objects, n_distractors)
        n = n_objects + n_distractors
        kinds = np.zeros(n, bool)
        kinds[rng.permutation(n)[:n_distractors]] = True  # True: distractor
        radii = self.radius * rng.uniform(0.9, 1.08, n)
        if check_shape(shape) == "ellipse":
            # The original order of random draws (place, then draw): default scenes stay bit-identical.
            self.centres = _place(rng, radii, width, height, touching, occlusion, period_x)
            keep = ~np.isnan(self.centres[:, 0])
            self.centres, self.kinds = self.centres[keep], kinds[keep]
            self.sprites = [
                (distractor_sprite(rng, r) if d else target_sprite(rng, r)) for r, d in zip(radii[keep], self.kinds)
            ]
        else:
            # Other shapes are placed by their masks, so they are drawn first.
            sprites = [(distractor_sprite(rng, r) if d else product_sprite(rng, r, shape)) for r, d in zip(radii, kinds)]
            self.centres = place_sprites(rng, [s.mask for s in sprites], width, height, touching, occlusion, period_x)
            keep = ~np.isnan(self.centres[:, 0])
            self.centres, self.kinds = self.centres[keep], kinds[keep]
            self.sprites = [s for s, k in zip(sprites, keep) if k]
        self.order = rng.permutation(len(self.sprites))  # paint order: later ones occlude earlier ones
        belt_w = int(math.ceil(period_x)) if period_x else width
        self.belt = belt(rng, belt_w, height)
        self.noise = SensorNoise(rng, (height, width, 3))

    def render(self, offset: float, noise_index: int) -> Scene:
        h, w = self.height, self.width
        if self.period_x:
            # Frame column x shows belt column (x + margin - offset) mod loop: the belt moves with the objects.
            period = self.belt.shape[1]
            start = int(round((self.period_x - w) / 2 - offset)) % period
            end = start + w
            if end <= period:
                image = self.belt[:, start:end].copy()
            else:
                image = np.concatenate([self.belt[:, start:], self.belt[:, : end - period]], axis=1)
        else:
            image = self.belt.copy()
        owner = np.zeros((h, w), np.int32)  # 0: belt, i + 1: object i
        for i in self.order:
            sprite = self.sprites[i]
            cx, cy = self.centres[i]
            if self.period_x:
                # The loop is longer than the frame by a margin, so an object is at most once in view.
                cx = (cx + offset) % self.period_x - (self.period_x - w) / 2
            paste(image, owner, sprite, cx, cy, i + 1)
        image = self.noise.add(image, noise_index)
        return self._scene(image, owner)

    def _scene(self, image: np.ndarray, owner: np.ndarray):
        return Scene(image, owner, self.kinds)


def render_scene(
    width: int = 640,
    height: int = 480,
    n_objects: int = 60,
    n_distractors: int = 8,
    seed: int = 0,
    touching: bool = True,
    occlusion: bool = True,
    object_radius: float | None = None,
    shape: str = "ellipse",
) -> Scene:
    """One static dense scene: every object lies inside the frame.

    Args:
        object_radius: mean target radius in pixels (of a disk of the product's area); None chooses one so the
            objects fit (about 42% cover).
        shape: the products' shape (streamer.simulator.shapes.PRODUCT_SHAPES); "ellipse" is the original scene.
    """
    world = _World(width, height, n_objects, n_distractors, seed, touching, occlusion, object_radius, None, shape)
    return world.render(0.0, 0)


def render_support(
    seed: int = 0, object_radius: float = 28.0, width: int = 320, height: int = 240, shape: str = "ellipse"
) -> tuple[np.ndarray, np.ndarray]:
    """A support image with one target object near the centre on the same belt -> (uint8[H, W, 3], bool[H, W])."""
    rng = np.random.default_rng(seed + 7919)
    return example_on_belt(rng, product_sprite(rng, object_radius, shape), width, height)


def example_on_belt(rng: np.random.Generator, sprite, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """`sprite` (a streamer.simulator.sprites.Sprite) alone at the centre of a fresh belt, with sensor noise ->
    (uint8[H, W, 3] RGB, bool[H, W] its mask)."""
    image = belt(rng, width, height)
    sh, sw = sprite.mask.shape
    if sh > height or sw > width:
        raise ValueError(f"a {sw}x{sh} px object does not fit a {width}x{height} support image")
    x0, y0 = (width - sw) // 2, (height - sh) // 2
    mask = np.zeros((height, width), bool)
    mask[y0 : y0 + sh, x0 : x0 + sw] = sprite.mask
    image[y0 : y0 + sh, x0 : x0 + sw][sprite.mask] = sprite.rgb[sprite.mask]
    noise = rng.normal(0, 3.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), mask


class ConveyorSimulator:
    """Objects ride the belt in +x at `speed_px` per frame, leave on the right and come back on the left.

    The objects lie on a loop a little longer than the frame, so about `n_objects` targets are in view
    (those at the edges partly). `frame(i)` is a pure function of i. `shape` picks the products' shape
    (streamer.simulator.shapes); the default "ellipse" is the original simulator, frame for frame.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        n_objects: int = 60,
        n_distractors: int = 8,
        speed_px: float = 4.0,
        seed: int = 0,
        shape: str = "ellipse",
    ):
        radius = default_radius(width, height, n_objects, n_distractors)
        # Place on a loop a little longer than the frame, at the density that shows about n_objects targets
        # (those cut by the frame's edges included).
        # An object must be out of view where it wraps round, so the margin is at least its longest extent: a
        # rod reaches 2.4 radii from its centre (the ellipses 1.2).
        margin = 2.5 * radius if shape == "ellipse" else 5.0 * radius
        period = width + margin
        scale = period / (width + 2 * radius)
        self.speed_px = speed_px
        self._seed = seed
        self.shape = shape
        self._world = _World(
            width,
            height,
            int(round(n_objects * scale)),
            int(round(n_distractors * scale)),
            seed,
            True,
            True,
            radius,
            period,
            shape,
        )

    @property
    def object_radius(self) -> float:
        return self._world.radius

    def frame(self, index: int) -> Scene:
        return self._world.render(index * self.speed_px, index)

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        r = self._world.radius
        size = int(max(8 * r, 64))
        return render_support(self._seed, r, size, size, self.shape)
