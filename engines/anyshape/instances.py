"""Objects from the classifier's probability map: product-like regions (each judged, and clumps parted, by
engines.anyshape.clumps), kept only when they have the support's shape and material, the frame's population of
shapes judged as a whole.

All on the classifier's grid (cells); `Regions` carries the answer to the density map generator (one point per
object, inside it: the deepest cell, so a ring's or a crescent's point is on the object, not in its hole) and to
the decoder (the label map: masks follow the outline whatever its shape, holes stay holes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from engines.anyshape.border import MIN_CUT_CELLS, touches_border
from engines.anyshape.clumps import EdgeCues, first_look, judge
from engines.anyshape.shape import ShapeStats, ShapeTolerance, fill_holes
from engines.anyshape.templates import Silhouettes

# Probability above which a cell is the product's (after smoothing): 0.5 lost the darker coins of a scene whose
# support was a bright one (the classifier's probability on them was 0.3-0.5); 0.3 kept them.
_FOREGROUND = 0.3
# Above this share of the frame's cells the product-like cells are mostly belt (measured on the category sets:
# the chrome caps' textured, graded belt scored 0.4-0.6 nearly everywhere, F1 0 -> 0.71 with Otsu's split; at
# 0.6 a heap of tablets covering 60-70% of the frame lost a tenth of its items, at 0.7 nothing changed but the caps).
_MOSTLY_PRODUCT = 0.7
# ... or where more than this share of the frame's cells are only half believed (between _FOREGROUND and _SURE):
# a belt the classifier half believes under another light. Measured on both category sets: at most 0.17 in every
# scene but two (chrome caps on gravel 0.54, tablets' foreign rods 0.54, both split by the rule above); the light
# sweep's warm bright light on gravel: L brackets 0.45 (110 counted for 28).
_SURE = 0.7
_HALF_BELIEVED = 0.3
# A region that holds no item is looked at again above a firmer level: this share of the way from _FOREGROUND to
# its 90th percentile. Measured on both category sets: 0.3 found 1 more star, 3 more crescents (cross-image, cool
# dim graded light on grass) and 2 more washers, and one more U bracket on the validation split, nothing lost (0.5:
# the crescents and washers only); the light sweep: low contrast and chrome caps graded gained, the caps under
# cool dim graded light 0.95 -> 0.90; both real-image sets unchanged.
_FIRMER = 0.3
# A region that fails the shape test is split when it is at least this many times the support's area (two items,
# one partly hidden; measured on the category sets: 1.65 (0.75 of the largest area) left such pairs whole, 1.4
# lifted printed, low contrast and shiny scenes (dev F1 0.51 -> 0.56, 0.36 -> 0.40, 0.79 -> 0.83) with no foreign
# case changed; 1.2-1.3 found the simulator's touching rectangles too but counted plates and discs as products).
_SPLIT_FROM = 1.4
# ... the support's area, or the frame's typical whole item's where smaller, judged from this many whole items on
# (measured on the category development set: 11 scenes counted more, none fewer, printed 0.900 -> 0.969 median F1,
# shiny 0.956 -> 0.992, elongated 0.964 -> 0.992; the validation split's and the real-image sets' tables kept, but
# one more chrome cap).
_TYPICAL_PEERS = 3
# An object's mean product probability must reach this share of the frame's median object's (measured on the
# category development set: 0.55-0.6 dropped a textured belt's mortar counted as washers, 12 of 12, and no item;
# 0.65 lost a low-contrast slab), judged from this many objects in a frame on.
_MATERIAL_SHARE = 0.6
_MATERIAL_PEERS = 3
# When the frame's components that could each be one object (at least _VERDICT_PEERS of them) have a median
# shape distance above _ANOTHER_SHAPE, they are another product, and the pieces of its clumps are not counted.
# Measured on the category development set: every true scene's median 0.25-0.93 (a low-contrast slab scene's
# ragged regions 1.01 and 2.04), the foreign cases' 1.03-2.26 (rods cut into hex caps: 3 counted -> 0).
_VERDICT_PEERS = 4
_ANOTHER_SHAPE = 1.2
# ... unless at least _AMONG_PEERS of them, and _AMONG_SHARE of them, have the support's shape: the product lies
# among ragged pieces of a belt it is joined to (steel pins on grass under dim graded light: 16 -> 24 of 35; no
# other case of either category set changed, nor either real-image set).
_AMONG_PEERS = 3
_AMONG_SHARE = 0.15


@dataclass
class Regions:
    """labels: int32[h, w], 0 background and k + 1 for object k; points: float32[N, 2] (x, y) cells, one inside
    each object; scores: float32[N] shape agreement in [0, 1]; whole: bool[N] the object is a product-like
    component of its own (not cut from a clump, nor by the frame's edge): its shape is the most telling."""

    labels: np.ndarray
    points: np.ndarray
    scores: np.ndarray
    whole: np.ndarray


def find_regions(
    probability: np.ndarray,
    support: ShapeStats,
    tolerance: ShapeTolerance | None = None,
    edges: EdgeCues | None = None,
    shapes: Silhouettes | None = None,
    judge_population: bool = True,
) -> Regions:
    """float32[h, w] product probability and the support's shape (same grid) -> the objects. Without `edges`,
    clumps are split by their shape alone and outlines are not checked; with the support's `shapes`, clumps are
    first parted by fitting its silhouette (items crossing or side by side). judge_population: False where the
    caller judges the frame's population of shapes itself, on finer outlines (printed products: see
    engines.anyshape.routed): clumps are then parted whatever the frame's separate components look like."""
    tolerance = tolerance or ShapeTolerance()
    if edges is None:
        edges = EdgeCues(np.zeros(probability.shape, bool), np.ones(probability.shape, bool))
    smooth = _smoothed(probability)
    foreground = _product_cells_of(smooth)
    foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    if support.hole_fraction <= 0.02:
        # A support without holes: a highlight or a print inside an item is not a hole in it.
        foreground = fill_holes(foreground)
    components, count = ndimage.label(foreground)
    looks = []
    for index, slices in enumerate(ndimage.find_objects(components), start=1):
        if slices is None:
            continue
        crop = components[slices] == index
        cut = shapes is not None and touches_border(slices, probability.shape)  # engines.anyshape.border
        if crop.sum() < (MIN_CUT_CELLS if cut else tolerance.min_area * support.area * 0.5):
            continue
        looks.append((crop, slices, first_look(crop, slices, edges, support, tolerance)))
    distances = [look.distance for _, _, look in looks if look.distance is not None]
    # Where the frame's separate items have another shape, pieces cut from its clumps, or cut by its edge, that
    # happen to fit the support's are no evidence of the product (a heap of rods cut into "tablets"): they are
    # not looked for (nor paid for).
    alike = sum(d < 1.0 for d in distances)
    another_shape = (judge_population and len(distances) >= _VERDICT_PEERS and np.median(distances) > _ANOTHER_SHAPE
                     and alike < max(_AMONG_PEERS, _AMONG_SHARE * len(distances)))
    wholes: list[tuple[np.ndarray, tuple[slice, slice], float]] = []  # components that are one object each
    parts: list[tuple[np.ndarray, tuple[slice, slice], float]] = []  # from clumps, and objects cut by the edge
    rest = []
    for crop, slices, look in looks:
        if not look.border and look.distance is not None and look.distance < 1.0:
            wholes.append((crop, slices, 1.0 - look.distance))
        elif not another_shape:
            rest.append((crop, slices, look))
    # A clump is measured against the support's area, or the frame's typical whole item's where smaller (from
    # _TYPICAL_PEERS of them on): a person picks a large, clear example, and a batch's items vary (two touching
    # half-size tiles are one support's area and were never parted).
    typical = _median_area(wholes) if len(wholes) >= _TYPICAL_PEERS else None
    split_from = _SPLIT_FROM * (support.area if typical is None else min(support.area, typical))
    if shapes is not None and typical is not None:
        # Silhouettes smaller than the frame's typical whole item would fit pieces of its items: not tried.
        shapes = shapes.from_scale(float(np.sqrt(typical / support.area)))
    for crop, slices, look in rest:
        found = judge(crop, slices, edges, support, tolerance, shapes, 0, split_from, look)
        if not found and not look.border:
            for piece, piece_slices in _firmer_parts(crop, slices, smooth, tolerance.min_area * support.area):
                found += judge(piece, piece_slices, edges, support, tolerance, None, 1, split_from)
        parts += found
    items = wholes + parts
    keep = _like_the_others(items, probability)
    whole = (np.arange(len(items)) < len(wholes))[keep] if items else np.zeros(0, bool)
    return _as_regions([item for item, kept in zip(items, keep) if kept], whole, probability.shape)


def _firmer_parts(crop: np.ndarray, slices: tuple[slice, slice], smooth: np.ndarray,
                  min_cells: float) -> list[tuple[np.ndarray, tuple[slice, slice]]]:
    """A region that holds no item (bool crop at `slices`) -> its parts above a firmer level of the smoothed
    probability: _FIRMER of the way from _FOREGROUND to the region's 90th percentile, each of at least
    `min_cells`. An item the classifier is sure of, joined to a belt it half believes (grass under dim light at
    0.4-0.6 around stars at 1.0), is ragged as a whole and comes out whole above that level."""
    values = smooth[slices]
    level = _FOREGROUND + _FIRMER * (float(np.percentile(values[crop], 90)) - _FOREGROUND)
    cores, _ = ndimage.label(crop & (values >= level))
    out = []
    for k, sub in enumerate(ndimage.find_objects(cores), start=1):
        if sub is None:
            continue
        piece = cores[sub] == k
        if piece.sum() >= min_cells:
            out.append((piece, (slice(slices[0].start + sub[0].start, slices[0].start + sub[0].stop),
                                slice(slices[1].start + sub[1].start, slices[1].start + sub[1].stop))))
    return out


def _median_area(items: list) -> float:
    """The median area (cells) of (mask, slices, score) objects."""
    return float(np.median([float(crop.sum()) for crop, _, _ in items]))


def _like_the_others(items: list, probability: np.ndarray) -> np.ndarray:
    """bool[N] which of the (mask, slices, score) objects have a mean product probability of at least
    _MATERIAL_SHARE of the frame's median object's: a region of another material that the classifier half
    believes (a brick wall's light mortar, 0.45-0.5, beside washers at 0.8-0.9) is not one of them."""
    if len(items) < _MATERIAL_PEERS:
        return np.ones(len(items), bool)
    means = np.array([float(probability[slices][crop].mean()) for crop, slices, _ in items])
    return means >= _MATERIAL_SHARE * float(np.median(means))


def product_cells(probability: np.ndarray) -> np.ndarray:
    """float32[h, w] probability -> bool[h, w] the product's cells (smoothed first: the classifier decides cell
    by cell, and a ragged outline would fail the shape test)."""
    return _product_cells_of(_smoothed(probability))


def _smoothed(probability: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(probability, (0, 0), 0.8)


def _product_cells_of(smooth: np.ndarray) -> np.ndarray:
    """float32[h, w] the smoothed probability (_smoothed) -> bool[h, w] the product's cells."""
    foreground = smooth > _FOREGROUND
    half_believed = float(np.mean(foreground & (smooth < _SURE)))
    if foreground.mean() > _MOSTLY_PRODUCT or half_believed > _HALF_BELIEVED:
        # Most of the frame looks like the product, or much of it half so: under this light the belt itself
        # scores high (a chrome cap on a textured belt with a light gradient: belt 0.4-0.6, caps 1.0). The items
        # are what stands above it: Otsu's split of the frame's probabilities.
        level, _ = cv2.threshold((smooth * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        foreground = smooth > max(level / 255.0, _FOREGROUND)
    return foreground


def _as_regions(kept, whole: np.ndarray, hw: tuple[int, int]) -> Regions:
    """The kept (mask, slices, score) objects and which of them are whole components -> Regions; where objects
    overlap, the first keeps the cells."""
    labels = np.zeros(hw, np.int32)
    points = np.zeros((len(kept), 2), np.float32)
    scores = np.zeros(len(kept), np.float32)
    for k, (crop, slices, score) in enumerate(kept):
        view = labels[slices]
        view[crop & (view == 0)] = k + 1
        scores[k] = score
    for k, (crop, slices, _) in enumerate(kept):
        own = labels[slices] == k + 1
        distance = cv2.distanceTransform(np.pad(own, 1).astype(np.uint8), cv2.DIST_L2, 5)
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        points[k] = (x - 1 + slices[1].start, y - 1 + slices[0].start)
    return Regions(labels, points, scores, whole)
