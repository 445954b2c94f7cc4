"""Exemplar-driven density map generator for the CPU.

The exemplar boxes give the objects' scale (their radius) and look. Objects are found in two steps:
1. candidates: cells ringed by an outline at the exemplars' radius (`rims`): every compact object of about
   that size, bright or dark, on any background;
2. verification: a candidate is of the kind when its neighbourhood correlates with the exemplars'
   rotation-invariant radial profile (normalised cross-correlation, so brightness and contrast do not
   matter: dim and bright objects of the kind alike) and its colour is the exemplars'. The correlation
   threshold is the frame's own split of its candidates' correlations (Otsu), within bounds.
Every object found contributes a Gaussian of unit mass, with a width set by the exemplars' scale, so the
map integrates to the count and each object's blob is what the IDM's threshold and contour split expect.
Large objects are processed on a pooled grid (about 8 cells per radius): same answer, faster.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from scipy.spatial import cKDTree

from engines.embedded.correlation import correlation_map, radial_profile
from engines.embedded.features import INTENSITY, RED_GREEN, YELLOW_BLUE, Descriptors, row_medians
from engines.embedded.payload import SUPPORT_CHROMA, boxes_to_grid, descriptors_for
from engines.embedded.rays import SMOOTH, frame_gradients, outlines
from engines.embedded.rims import RimField, snap_to_candidates, suppress_close
from engines.interfaces import DensityOutput, ImageEmbedding

log = logging.getLogger(__name__)

# Density blob width in object radii: narrow enough that touching objects' blobs stay apart at the IDM's T.
_BLOB_SIGMA = 0.25
_POOL_RADIUS = 8.0
# Verified candidates climb to their correlation peak within this many radii; candidates nearer than
# _SAME_OBJECT of their own radius are one object.
_CLIMB = 0.35
# Candidates nearer each other than `_SHARED` exemplar radii climb on, at most `_PEAK_CLIMBS` times. Measured on
# the flow simulator's items 1.6 times the support's size (benchmarks/rejects.py; docs/rejects-calibration.md):
# masks within 15% of the item's size in 66% of views before, 81% with these; 1.3 radii (86%) cost the touching
# biscuits of `--set categories` 2 points of F1; every candidate within 2 radii, the development set's median F1
# 2 points (0.939 -> 0.917).
_SHARED = 1.0
_PEAK_CLIMBS = 4
_SAME_OBJECT = 0.9
# A frame's rim map serves radii within this fraction of the one it was computed at.
_RIM_REUSE = 0.02
# A candidate's own radius (for merging candidates on one object) is looked for up to this many exemplar radii.
_OWN_REACH = 2.2
# Candidates whose outline is weaker than this fraction of the exemplars' are no object.
_MIN_RIM = 0.15
# Bounds of the correlation threshold (the frame's Otsu split of its candidates' correlations).
_CORRELATION_RANGE = (0.25, 0.55)
# Without two clear populations of candidates, a correlation at least this strong is of the kind.
_UNIMODAL_THRESHOLD = 0.3
# Otsu's effectiveness above which the candidates' correlations are taken as two populations.
_BIMODAL = 0.8
# Colour: exemplars with less chroma than this are grey; grey candidates are those under this many times it.
_GREY_CHROMA = 0.06
_GREY_TOLERANCE = 1.5
# Coloured exemplars: candidates within this hue angle (degrees), with at least this share of their chroma.
_MAX_HUE_DIFFERENCE = 30.0
_MIN_SATURATION = 0.3


class EmbeddedDensityMapGenerator:
    """DensityMapGenerator that works with any embedding: it computes its descriptors from the image unless
    the embedding is the embedded encoder's."""

    def density(
        self, image_rgb: np.ndarray, embedding: ImageEmbedding | None, exemplar_boxes: np.ndarray
    ) -> DensityOutput:
        """image_rgb uint8[H, W, 3], exemplar_boxes float[M, 4] -> density float32[H, W] and its count."""
        desc = descriptors_for(image_rgb, embedding)
        # The colour the decoder's target guidance found most support-like on this frame, where it ran.
        support_colour = desc.peek(SUPPORT_CHROMA)
        boxes = boxes_to_grid(desc, exemplar_boxes)
        if len(boxes):
            # Objects of more than ~8 cells' radius are found as well on a coarser grid, and faster.
            desc = desc.pooled(max(int(exemplar_radius(boxes) // _POOL_RADIUS), 1))
        centres, radius = detect_objects(desc, exemplar_boxes, support_colour)
        density = render_density(centres, radius, desc)
        return DensityOutput(density, float(len(centres)))


def exemplar_radius(grid_boxes: np.ndarray) -> float:
    """The median exemplar radius in grid cells, radius = sqrt(w * h) / 2."""
    w = np.maximum(grid_boxes[:, 2] - grid_boxes[:, 0], 1e-3)
    h = np.maximum(grid_boxes[:, 3] - grid_boxes[:, 1], 1e-3)
    return float(row_medians(np.sqrt(w * h) / 2))


def detect_objects(
    desc: Descriptors,
    exemplar_boxes: np.ndarray,
    support_colour: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """-> (float32[K, 2] object centres (x, y) in grid cells, the exemplars' radius in cells).

    support_colour: float[2] chroma of the frame's most support-like cells, where known: then the colour test
    compares candidates with it rather than with the exemplars (an exemplar box can be mostly background or
    another object where its object is concave or overlapped)."""
    boxes = boxes_to_grid(desc, exemplar_boxes)
    if len(boxes) == 0:
        return np.zeros((0, 2), np.float32), 1.0
    radius = max(exemplar_radius(boxes), 1.0)
    frame = _candidates_for(desc, radius)
    # The boxes' centres on their objects' centres (a mask's box is off where the mask is).
    centres = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2 - 0.5, (boxes[:, 1] + boxes[:, 3]) / 2 - 0.5])
    exemplars = snap_to_candidates(centres, frame.cells, 0.3 * radius)
    own_rim = float(row_medians(frame.rim.at(np.rint(exemplars).astype(np.int64))))
    outlined = frame.strength > _MIN_RIM * own_rim
    candidates = frame.cells[outlined]
    if len(candidates) == 0:
        return np.zeros((0, 2), np.float32), radius
    intensity = desc.data[INTENSITY]
    profile = np.mean([radial_profile(intensity, _box(x, y, radius)) for x, y in exemplars], axis=0)
    ncc = correlation_map(intensity, profile, radius)
    # The best correlation within a cell of the candidate: the two maps' peaks need not share a cell.
    scores = _at(cv2.dilate(ncc, np.ones((3, 3), np.uint8)), candidates)
    threshold = correlation_threshold(scores)
    colour = colour_matches(desc, exemplars, candidates, radius, support_colour, frame.chroma(desc)[:, outlined])
    alike = (scores >= threshold) & colour
    log.debug(
        "dmg: radius %.1f cells, %d candidates, correlation threshold %.2f (%d pass), colour %d pass, %d objects",
        radius, len(candidates), threshold, int((scores >= threshold).sum()), int(colour.sum()), int(alike.sum()),
    )
    found, found_scores = candidates[alike], scores[alike]
    if len(found):
        # An object larger than the exemplars can hold two candidates off its centre; the correlation
        # (searched over scales) peaks at its centre: candidates climb to their correlation peak, and
        # candidates then on one peak are one object.
        found = climb(ncc, found, _CLIMB * radius)
        # Candidates nearer each other than two objects of the exemplars' size can be lie on one object well
        # larger than the exemplars (a ring at the exemplars' radius touches its outline on either side of its
        # centre), farther from its peak than one climb: they climb on to it (the decoder's outline from a
        # point that far off the centre is often a part of the object).
        nearest = _nearest_distance(found)
        shared = nearest < _SHARED * radius
        if shared.any():
            found[shared] = climb_to_peak(ncc, found[shared], _CLIMB * radius)
            nearest = _nearest_distance(found)
        # Each candidate's own radius (the outline around it, as the decoder finds it): two candidates
        # nearer than `_SAME_OBJECT` of it are on one object.
        # Only candidates with a neighbour that near can be merged: the others keep the exemplars' radius.
        own = np.full(len(found), radius)
        crowded = nearest < _SAME_OBJECT * _OWN_REACH * radius
        if crowded.any():
            own[crowded] = frame.own_radii(desc, found[crowded], _OWN_REACH * radius)
        found = found[suppress_close(found, own, found_scores, _SAME_OBJECT)]
        log.debug("dmg: %d objects after merging candidates on one object (own radii median %.1f)", len(found),
                  float(row_medians(own)))
    return found.astype(np.float32), radius


class _FrameCandidates:
    """A frame's rim field at one radius, its candidates (cells float64[K, 2], rim strength float32[K]), and
    what every density call on this frame at about that radius can share: the candidates' colour and the
    own radius of the places candidates climb to (the feedback pass mostly finds the first pass's objects)."""

    def __init__(self, rim: RimField):
        self.rim = rim
        self.cells, self.strength = rim.candidates()
        self._chroma: np.ndarray | None = None
        self._own: dict[tuple[int, int], float] = {}

    def chroma(self, desc: Descriptors) -> np.ndarray:
        """float64[2, K]: `_chroma_medians` of every candidate."""
        if self._chroma is None:
            self._chroma = _chroma_medians(desc, self.cells, self.rim.radius)
        return self._chroma

    def own_radii(self, desc: Descriptors, cells: np.ndarray, max_radius: float) -> np.ndarray:
        """float[N]: the outline radius around each of the integer cells float[N, 2] (see `rays.outlines`)."""
        keys = [(int(x), int(y)) for x, y in np.rint(cells)]
        missing = [k for k, key in enumerate(keys) if key not in self._own]
        if missing:
            found = outlines(
                desc.smoothed(SMOOTH), cells[missing], max_radius=max_radius, independent=True,
                gradients=frame_gradients(desc),
            ).radius
            self._own.update((keys[k], float(r)) for k, r in zip(missing, found))
        return np.array([self._own[key] for key in keys])


def _candidates_for(desc: Descriptors, radius: float) -> _FrameCandidates:
    """The frame's candidates at `radius`, or at a radius within `_RIM_REUSE` of it (each direction already
    looks from 0.8 to 1.2 radii)."""
    known = desc.per_support(("rims",), dict)
    for other, candidates in known.items():
        if abs(radius / other - 1.0) <= _RIM_REUSE:
            return candidates
    known[radius] = _FrameCandidates(RimField(*frame_gradients(desc), radius))
    return known[radius]


def _nearest_distance(points: np.ndarray) -> np.ndarray:
    """float[K]: each point's distance to its nearest other point (inf when alone), by a k-d tree: memory in
    proportion to K, where a pairwise matrix grows with K^2 on a frame of thousands of objects."""
    if len(points) < 2:
        return np.full(len(points), np.inf)
    distances, _ = cKDTree(points).query(points, k=2)
    return distances[:, 1]


def climb(values: np.ndarray, points: np.ndarray, reach: float) -> np.ndarray:
    """float64[K, 2]: each point moved to the largest value of `values` within `reach` cells."""
    h, w = values.shape
    r = max(int(round(reach)), 1)
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1]
    inside = xs * xs + ys * ys <= r * r
    dx, dy = xs[inside], ys[inside]
    px = np.clip(np.rint(points[:, 0]).astype(int)[:, None] + dx[None, :], 0, w - 1)
    py = np.clip(np.rint(points[:, 1]).astype(int)[:, None] + dy[None, :], 0, h - 1)
    best = np.argmax(values[py, px], axis=1)
    rows = np.arange(len(points))
    return np.column_stack([px[rows, best], py[rows, best]]).astype(np.float64)


def climb_to_peak(values: np.ndarray, points: np.ndarray, reach: float) -> np.ndarray:
    """float64[K, 2]: each point climbed (`climb`) again while its value rises, at most `_PEAK_CLIMBS` times:
    toward its local peak of `values` up to `_PEAK_CLIMBS` x `reach` cells away (a plateau stops it)."""
    for _ in range(_PEAK_CLIMBS):
        higher = climb(values, points, reach)
        rises = _at(values, higher) > _at(values, points)
        if not rises.any():
            break
        points = np.where(rises[:, None], higher, points)
    return points


def _at(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """values at the cells nearest float[K, 2] (x, y) points."""
    h, w = values.shape
    ix = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
    return values[iy, ix]


def _box(x: float, y: float, radius: float) -> np.ndarray:
    """The grid box (x0, y0, x1, y1) of a disc of `radius` cells centred on cell (x, y)."""
    return np.array([x + 0.5 - radius, y + 0.5 - radius, x + 0.5 + radius, y + 0.5 + radius])


def correlation_threshold(scores: np.ndarray) -> float:
    """The correlation that separates the kind's candidates from the background's: Otsu's threshold on the
    candidates' correlations (the frame's own split: scenes with weaker or stronger matches are judged
    alike), within `_CORRELATION_RANGE`."""
    low, high = _CORRELATION_RANGE
    if len(scores) < 4 or float(scores.max() - scores.min()) < 1e-3:
        return _UNIMODAL_THRESHOLD
    hist, edges = np.histogram(scores, bins=32)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist).astype(np.float64)
    mean = np.cumsum(hist * centres)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1e-9)
    best = int(np.argmax(between[:-1]))
    # Otsu's effectiveness (between-class over total variance): a unimodal spread (nearly all candidates
    # of the kind, or none) scores at most ~0.75, and its split would cut through one population.
    variance = float(np.sum(hist * (centres - total_mean / total) ** 2)) / total
    if between[best] / (total * total) < _BIMODAL * variance:
        return _UNIMODAL_THRESHOLD
    # Between two well-separated populations every split in the gap is as good: the gap's middle, not its
    # lower end (which the first maximum would be).
    last = best
    while last + 1 < len(between) - 1 and between[last + 1] >= between[best] * (1 - 1e-9):
        last += 1
    return float(np.clip((centres[best] + centres[last]) / 2, low, high))


def _chroma_medians(desc: Descriptors, points: np.ndarray, radius: float) -> np.ndarray:
    """float64[2, K]: the chroma descriptors' medians over a square of half an object radius around each point.

    The median, not the mean: where an object overlaps one of another colour, a mean mixes the two colours
    into a third (blue and amber average to grey); the median keeps the colour most of the square has."""
    h, w = desc.grid_hw
    r = max(int(round(0.5 * radius)), 1)
    ix = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
    offsets = np.arange(-r, r + 1)
    ys = np.clip(iy[:, None, None] + offsets[None, :, None], 0, h - 1)
    xs = np.clip(ix[:, None, None] + offsets[None, None, :], 0, w - 1)
    return np.stack(
        [row_medians(desc.data[c][ys, xs].reshape(len(points), -1)) for c in (RED_GREEN, YELLOW_BLUE)]
    ).astype(np.float64)


def reference_colour(chroma: np.ndarray) -> np.ndarray:
    """float[2]: the exemplars' colour from their chroma float[2, M] (in order, the most support-like first).

    Exemplars can disagree: one that overlaps an object of another colour, or one on another kind of object.
    Grey or coloured is decided by most of them; among coloured ones, the hue most others share wins (ties: the
    earlier exemplar), and its agreeing exemplars are averaged. A component-wise median would turn blue and
    amber into grey."""
    strength = np.hypot(chroma[0], chroma[1])
    coloured = strength >= _GREY_CHROMA
    if coloured.sum() * 2 <= chroma.shape[1]:
        return np.median(chroma[:, ~coloured], axis=1) if (~coloured).any() else np.zeros(2)
    unit = chroma[:, coloured] / strength[coloured]
    agree = (unit.T @ unit) >= np.cos(np.radians(_MAX_HUE_DIFFERENCE))  # [C, C]
    best = int(np.argmax(agree.sum(axis=1)))  # argmax takes the first of equals: the earlier exemplar
    return chroma[:, coloured][:, agree[best]].mean(axis=1)


def colour_matches(
    desc: Descriptors, exemplars: np.ndarray, candidates: np.ndarray, radius: float,
    reference: np.ndarray | None = None, candidate_chroma: np.ndarray | None = None,
) -> np.ndarray:
    """bool[K]: the candidates' colour (chroma over their middle) is the exemplars' (see `reference_colour`).

    Coloured exemplars are compared by hue (the chroma vector's direction), which brightness, saturation and
    a mix with a dark or grey background leave alone; grey exemplars accept grey candidates only."""
    if reference is None:
        reference = reference_colour(_chroma_medians(desc, exemplars, radius))
    found = _chroma_medians(desc, candidates, radius) if candidate_chroma is None else candidate_chroma  # [2, K]
    strength = np.hypot(found[0], found[1])
    reference_strength = float(np.hypot(*reference))
    if reference_strength < _GREY_CHROMA:
        return strength < max(_GREY_CHROMA, 2 * reference_strength) * _GREY_TOLERANCE
    cosine = (found[0] * reference[0] + found[1] * reference[1]) / np.maximum(strength * reference_strength, 1e-9)
    return (cosine >= np.cos(np.radians(_MAX_HUE_DIFFERENCE))) & (strength >= _MIN_SATURATION * reference_strength)


def render_density(centres: np.ndarray, radius: float, desc: Descriptors) -> np.ndarray:
    """Unit-mass Gaussians at the centres on the grid, resampled to the frame: float32[H, W], sum = K."""
    gh, gw = desc.grid_hw
    fh, fw = desc.frame_hw
    grid = np.zeros((gh, gw), np.float32)
    if len(centres):
        # Bilinear splatting keeps sub-cell centre positions.
        x, y = centres[:, 0].astype(np.float64), centres[:, 1].astype(np.float64)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - x0, y - y0
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            np.add.at(grid, (np.clip(y0 + dy, 0, gh - 1), np.clip(x0 + dx, 0, gw - 1)), wgt.astype(np.float32))
        grid = cv2.GaussianBlur(grid, (0, 0), max(_BLOB_SIGMA * radius, 0.6), borderType=cv2.BORDER_CONSTANT)
    density = grid if (gh, gw) == (fh, fw) else cv2.resize(grid, (fw, fh), interpolation=cv2.INTER_LINEAR)
    total = float(density.sum())
    if total > 0:
        density *= len(centres) / total
    return density
