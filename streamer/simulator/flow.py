"""A flowing conveyor: new items enter on the left, ride the belt in +x and leave on the right, never to return.

Unlike ConveyorSimulator (a loop of the same objects), every item is new and has an exact truth: its id, its
size in pixels and in millimetres at a set scale, and whether its centre has crossed a given line. Items are
laid out along the belt in chunks one frame wide, each chunk drawn from its own seed, so `frame(i)` is a pure
function of i and a chunk's layout never depends on which frames were rendered before.

Belt coordinates: item k sits at distance `u_k` behind the frame's left edge at frame 0; at frame t its centre
is at x = speed * t - u_k, y = y_k (pixels).

Out-of-spec items (`out_of_spec`, a fraction of the target items, 0 by default): half of them are drawn at
UNDERSIZE times the radius and half at OVERSIZE times. An in-spec item's equivalent diameter lies within 0.83 to
1.17 times the nominal one (`nominal_diameter_px`: the radius varies 0.9-1.08 and the ellipse's axes 1.0-1.18
and 0.85-1.0), a small one within 0.50 to 0.70 and a large one within 1.33 to 1.88: a spec of SPEC_BAND (0.75 to
1.25 times the nominal diameter) tells them apart with a margin of at least 6% of the diameter on either side.
Each item's kind is truth (`defects`), and `arrival_index` says at which (fractional) frame an item's centre
reaches a station.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from streamer.simulator.scene import Scene, _place, default_radius, render_support
from streamer.simulator.shapes import check_shape, place_sprites, product_sprite
from streamer.simulator.sprites import SensorNoise, Sprite, belt, distractor_sprite, paste, target_sprite

_CHUNK_SEED = 1_000_003
UNDERSIZE, OVERSIZE = 0.6, 1.6  # radius factors of the out-of-spec items (see the module's docstring)
_ELLIPSE_REACH = 1.18  # streamer.simulator.sprites.target_sprite: the longer semi-axis is up to 1.18 radii
SPEC_BAND = (0.75, 1.25)  # a diameter spec, in nominal diameters, that tells in-spec items from the others
TOO_SMALL, IN_SPEC, TOO_LARGE = -1, 0, 1


@dataclass(frozen=True)
class FlowTruth:
    """The exact truth of one flow frame.

    Attributes:
        index: the frame index.
        ids: int64[N] ids of the target items at least partly in view.
        centres: float64[N, 2] their centres (x, y) in pixels.
        diameters_px: float64[N] their full (unoccluded) equivalent diameters in pixels.
        px_per_mm: the simulator's scale.
    """

    index: int
    ids: np.ndarray
    centres: np.ndarray
    diameters_px: np.ndarray
    px_per_mm: float
    simulator: "FlowSimulator"

    @property
    def diameters_mm(self) -> np.ndarray:
        return self.diameters_px / self.px_per_mm

    def passed(self, line: tuple[float, float, float, float]) -> int:
        """The number of target items whose centre has crossed the pixel segment x0, y0, x1, y1 by this frame."""
        return self.simulator.passed(self.index, line)


@dataclass(frozen=True)
class _Chunk:
    u: np.ndarray  # float64[n] distance behind the frame's left edge at frame 0
    y: np.ndarray  # float64[n]
    target: np.ndarray  # bool[n]
    radii: np.ndarray  # float64[n] the sprites' mean radii
    diameter: np.ndarray  # float64[n] equivalent diameter of the full sprite, pixels
    first_id: int  # ids of this chunk's items are first_id .. first_id + n - 1
    # Non-ellipse shapes: every item drawn (m >= n), whether it found room, and its radius and kind.
    kept: np.ndarray | None = None  # bool[m]
    all_radii: np.ndarray | None = None  # float64[m]
    all_target: np.ndarray | None = None  # bool[m]
    defect: np.ndarray | None = None  # int8[n]: TOO_SMALL, IN_SPEC or TOO_LARGE


class FlowSimulator:
    """Items flowing through the frame at `speed_px` per frame, about `n_objects` targets in view.

    Args:
        px_per_mm: the scale the truth's millimetres are given at.
        occlusion: let some items overlap (off by default: a measured size then is the item's own).
        shape: the target items' shape (streamer.simulator.shapes); "ellipse" is the original flow.
        out_of_spec: the fraction of target items drawn too small or too large (half each; module docstring);
            0 keeps every frame exactly as before.
    """

    def __init__(self, width: int = 640, height: int = 480, n_objects: int = 40, n_distractors: int = 4,
                 speed_px: float = 4.0, seed: int = 0, px_per_mm: float = 1.0, occlusion: bool = False,
                 shape: str = "ellipse", out_of_spec: float = 0.0):
        if not speed_px > 0:
            raise ValueError(f"a flowing belt needs a speed above 0, got {speed_px}")
        if not 0.0 <= out_of_spec <= 1.0:
            raise ValueError(f"out_of_spec is a fraction from 0 to 1, got {out_of_spec}")
        self.out_of_spec = out_of_spec
        self.shape = check_shape(shape)
        self.width, self.height = width, height
        self.n_objects, self.n_distractors = n_objects, n_distractors
        self.speed_px, self.seed, self.px_per_mm, self.occlusion = speed_px, seed, px_per_mm, occlusion
        self.object_radius = default_radius(width, height, n_objects, n_distractors)
        strip = belt(np.random.default_rng(seed), 2 * width, height)
        self._belt = np.concatenate([strip, strip], axis=1)  # any window of one period is a slice
        rng = np.random.default_rng(seed + 17)
        self._noise = SensorNoise(rng, (height, width, 3))
        self._layouts: dict[int, _Chunk] = {}
        self._sprites = lru_cache(maxsize=8)(self._chunk_sprites)

    # -- layout ---------------------------------------------------------------------------------------
    def _rng(self, chunk: int, part: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, chunk, part, _CHUNK_SEED])

    def _layout(self, chunk: int) -> _Chunk:
        """Chunk c covers u in [c * width, (c + 1) * width); ids are numbered chunk by chunk."""
        if chunk in self._layouts:
            return self._layouts[chunk]
        first = 0 if chunk == 0 else self._layout(chunk - 1).first_id + len(self._layout(chunk - 1).u)
        rng = self._rng(chunk, 0)
        n = self.n_objects + self.n_distractors
        kinds = np.zeros(n, bool)
        kinds[rng.permutation(n)[: self.n_distractors]] = True
        radii = self.object_radius * rng.uniform(0.9, 1.08, n)
        defect = np.zeros(n, np.int8)
        if self.out_of_spec > 0:
            # Its own random stream: the layout's other draws stay what they were.
            draw = self._rng(chunk, 2).random(n)
            defect[:] = np.where(draw < self.out_of_spec / 2, TOO_SMALL, np.where(draw < self.out_of_spec, TOO_LARGE,
                                                                                   IN_SPEC))
            defect[kinds] = IN_SPEC  # distractors are another kind, not a product out of spec
            radii = radii * np.select([defect == TOO_SMALL, defect == TOO_LARGE], [UNDERSIZE, OVERSIZE], 1.0)
        if self.shape == "ellipse":
            # With out-of-spec items, each is placed by its ellipse's longest possible semi-axis (1.18 radii), so
            # that every item passes whole between the frame's top and bottom: its size can be measured.
            reach = radii * (_ELLIPSE_REACH if self.out_of_spec > 0 else 1.0)
            centres = _place(rng, reach, self.width, self.height, True, self.occlusion, None)
        else:
            # Placed by their masks (shapes.place_sprites): the chunk's sprites are drawn first, all of them.
            masks = [s.mask for s in self._draw_sprites(chunk, radii, ~kinds)]
            centres = place_sprites(rng, masks, self.width, self.height, True, self.occlusion, None)
        keep = ~np.isnan(centres[:, 0])
        # Frame x = speed * t - u: a chunk's right-most item enters first.
        u = chunk * self.width + (self.width - centres[keep, 0])
        layout = _Chunk(u, centres[keep, 1], ~kinds[keep], radii[keep], np.zeros(int(keep.sum())), first,
                        keep, radii, ~kinds, defect[keep])
        self._layouts[chunk] = layout
        layout.diameter[:] = [2.0 * math.sqrt(s.mask.sum() / math.pi) for s in self._sprites(chunk)]
        return layout

    def _chunk_sprites(self, chunk: int) -> list[Sprite]:
        layout = self._layout(chunk)
        if self.shape != "ellipse":
            # The same draws as the layout's (a pure function of the chunk), kept where the layout kept them.
            every = self._draw_sprites(chunk, layout.all_radii, layout.all_target)
            return [s for s, k in zip(every, layout.kept) if k]
        art = self._rng(chunk, 1)
        return [target_sprite(art, r) if t else distractor_sprite(art, r) for r, t in zip(layout.radii, layout.target)]

    def _draw_sprites(self, chunk: int, radii: np.ndarray, target: np.ndarray) -> list[Sprite]:
        """Every item's sprite of a chunk, placed or not (non-ellipse shapes): radii float64[m], target bool[m]."""
        art = self._rng(chunk, 1)
        return [product_sprite(art, r, self.shape) if t else distractor_sprite(art, r) for r, t in zip(radii, target)]

    def _chunks_in_view(self, index: int) -> range:
        margin = 3.0 * self.object_radius
        front = self.speed_px * index
        first = max(int(math.floor((front - self.width - margin) / self.width)), 0)
        last = int(math.floor((front + margin) / self.width))
        return range(first, max(last, first - 1) + 1)

    # -- frames ---------------------------------------------------------------------------------------
    def frame(self, index: int) -> tuple[Scene, FlowTruth]:
        """Frame `index` and its truth."""
        h, w = self.height, self.width
        offset = self.speed_px * index
        start = int(round(-offset)) % (self._belt.shape[1] // 2)
        image = self._belt[:, start:start + w].copy()
        owner = np.zeros((h, w), np.int32)
        ids, centres, diameters = [], [], []
        kinds: list[bool] = []
        for chunk in self._chunks_in_view(index):
            layout, sprites = self._layout(chunk), self._sprites(chunk)
            xs = offset - layout.u
            for k in range(len(xs)):
                sprite, cx, cy = sprites[k], xs[k], layout.y[k]
                if not paste(image, owner, sprite, cx, cy, len(kinds) + 1):
                    continue
                kinds.append(not layout.target[k])
                ids.append(layout.first_id + k)
                centres.append((cx, cy))
                diameters.append(layout.diameter[k])
        image = self._noise.add(image, index)
        scene = Scene(image, owner, np.array(kinds, bool))
        target = ~np.array(kinds, bool)
        truth = FlowTruth(index, np.array(ids, np.int64)[target], np.array(centres, np.float64).reshape(-1, 2)[target],
                          np.array(diameters, np.float64)[target], self.px_per_mm, self)
        return scene, truth

    # -- truth ----------------------------------------------------------------------------------------
    def passed(self, index: int, line: tuple[float, float, float, float]) -> int:
        """Target items whose centre crossed the pixel segment (x0, y0, x1, y1) by frame `index` (exact).

        Items move in +x only, so item k crosses where the line meets its row y_k, if it does."""
        x0, y0, x1, y1 = map(float, line)
        front = self.speed_px * index
        total = 0
        for chunk in range(0, int(math.floor((front - min(x0, x1)) / self.width)) + 1):
            layout = self._layout(chunk)
            y = layout.y
            if y1 == y0:  # a line along the belt: no item crosses it
                continue
            on = (y >= min(y0, y1)) & (y <= max(y0, y1)) & layout.target
            x_line = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            total += int(np.count_nonzero(on & (front - layout.u >= x_line)))
        return total

    @property
    def nominal_diameter_px(self) -> float:
        """The diameter an in-spec item has on average (pixels); SPEC_BAND is in these."""
        return 2.0 * self.object_radius

    def _locate(self, ident: int) -> tuple[_Chunk, int]:
        """The chunk holding item `ident` and its place in it (ids are numbered chunk by chunk)."""
        chunk = 0
        while True:
            layout = self._layout(chunk)
            if ident < layout.first_id + len(layout.u):
                if ident < layout.first_id:
                    raise KeyError(ident)
                return layout, ident - layout.first_id
            chunk += 1

    def defects(self, ids: np.ndarray) -> np.ndarray:
        """int[N] item ids (as FlowTruth.ids gives them) -> int8[N]: TOO_SMALL, IN_SPEC or TOO_LARGE."""
        out = np.zeros(len(ids), np.int8)
        for n, ident in enumerate(np.asarray(ids).tolist()):
            layout, k = self._locate(int(ident))
            out[n] = layout.defect[k]
        return out

    def arrival_index(self, ident: int, line: tuple[float, float, float, float]) -> float:
        """The (fractional) frame index at which item `ident`'s centre reaches the line x0, y0, x1, y1 (pixels of
        the frame's coordinates, extended beyond the segment and beyond the frame: a station downstream of the
        frame is at x > width); NaN for a line along the belt (horizontal), which no item crosses."""
        x0, y0, x1, y1 = map(float, line)
        if y1 == y0:
            return math.nan
        layout, k = self._locate(int(ident))
        x_line = x0 + (layout.y[k] - y0) * (x1 - x0) / (y1 - y0)
        return float((x_line + layout.u[k]) / self.speed_px)

    def arrivals(self, line: tuple[float, float, float, float], first: float, last: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every target item whose centre reaches the line (as `arrival_index`) between frames `first` and `last`
        -> (int64[N] ids, float64[N] arrival frame indices, int8[N] defects), in arrival order."""
        x0, y0, x1, y1 = map(float, line)
        if y1 == y0:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)
        ids, when, defects = [], [], []
        chunk = 0
        # u only grows chunk by chunk: the chunks past `last` at the line's farthest point are never reached.
        while chunk * self.width <= self.speed_px * last - min(x0, x1) + self.width:
            layout = self._layout(chunk)
            x_line = x0 + (layout.y - y0) * (x1 - x0) / (y1 - y0)
            index = (x_line + layout.u) / self.speed_px
            keep = layout.target & (index >= first) & (index <= last)
            ids.append(layout.first_id + np.flatnonzero(keep))
            when.append(index[keep])
            defects.append(layout.defect[keep])
            chunk += 1
        ids, when, defects = np.concatenate(ids), np.concatenate(when), np.concatenate(defects)
        order = np.argsort(when)
        return ids[order].astype(np.int64), when[order], defects[order]

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.object_radius
        size = int(max(8 * r, 64))
        return render_support(self.seed, r, size, size, self.shape)
