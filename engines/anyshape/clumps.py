"""One product-like region judged: whether it is one item (its shape and outline, or a cut of the support where the
frame's edge cuts it) or a clump of several, parted by fitting the support's silhouette or by marker-controlled
watershed, each part judged again. All on the classifier's grid (cells); `engines.anyshape.instances` finds the
regions and gathers the items of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import ndimage

from engines.anyshape.border import Cut, judge_cut, touches_border
from engines.anyshape.shape import ShapeStats, ShapeTolerance, shape_distance, shape_stats
from engines.anyshape.templates import Silhouettes, fit_items

# Watershed markers: distance-transform maxima standing this share of the support's inner radius above their
# surroundings (lower splits one object at its narrow waist, higher merges touching round items).
_MARKER_DEPTH = 0.3
# A clump's parts that still hold several objects are split again, with shallower markers, this many times
# (dense piles of items overlapping by up to 20% need three rounds: the category set's touching scenes).
_MAX_SPLITS = 3
# A region is an item only where at least this share of its outline lies on an image edge (a piece of belt that
# the classifier took for the product and the watershed cut out has straight cuts through plain belt instead).
_MIN_OUTLINED = 0.5
# A clump is taken as the silhouettes fitted in it when they cover at least this share of it (else it is split by
# its distance transform): fits of a pile cover 0.7-0.8 of it (measured on the simulator's rods), a clump of
# another product's pieces far less.
_FITTED_SHARE = 0.6
# Without the support's silhouettes (engines.anyshape.border judges against them where given), an object cut by
# the frame's edge is kept from this share of the support's area on (its shape is not judged;
# measured on the default simulator with a rectangle's support, 20 frames: 0.25 missed 8 of 158 rectangles cut by
# the edge, count -8.2%; 0.15 and 0.1 -5.1%; no category case changed from 0.25 to 0.15 once a region's material
# is judged against the frame's others, see _MATERIAL_SHARE).
_BORDER_MIN_AREA = 0.15


@dataclass
class EdgeCues:
    """What the image's edges say of the classifier's regions (bool[h, w] maps on its grid).

    cuts: cells on an edge stronger than any inside the support object: where one item ends and the next begins
    in a pile with no gap between them. outlined: cells within a cell of an edge about as strong as the
    support's own outline: an item's outline runs along them, a piece of belt cut from a clump's does not.
    """

    cuts: np.ndarray
    outlined: np.ndarray


def _outlined_share(crop: np.ndarray, slices: tuple[slice, slice], edges: EdgeCues) -> float:
    """The share of the region's outline cells (those not on the frame's edge) that lie on an image edge."""
    inner = cv2.erode(crop.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
    outline = crop & ~inner
    if not outline.any():
        return 1.0
    return float(edges.outlined[slices][outline].mean())


@dataclass(frozen=True)
class Look:
    """A region at first sight: whether it touches the frame's edge, whether its outline runs along the image's
    edges, and its shape distance to the support's where it could be one object (else None)."""

    border: bool
    outlined: bool
    distance: float | None


def first_look(crop: np.ndarray, slices: tuple[slice, slice], edges: EdgeCues, support: ShapeStats,
                tolerance: ShapeTolerance) -> Look:
    """One region (bool crop of the grid at `slices`) -> its Look."""
    area = float(crop.sum())
    border = touches_border(slices, edges.cuts.shape)
    outlined = _outlined_share(crop, slices, edges) >= _MIN_OUTLINED
    distance = None
    if not border and outlined and tolerance.min_area * support.area <= area <= tolerance.max_area * support.area:
        distance = shape_distance(shape_stats(crop), support, at_size(tolerance, area / support.area))
    return Look(border, outlined, distance)


def at_size(tolerance: ShapeTolerance, area_ratio: float) -> ShapeTolerance:
    """The tolerance for a region of `area_ratio` times the support's area: a smaller item covers fewer cells,
    and its points and corners round off on the grid (a star at half the support's area measures as solid as a
    pentagon), so its solidity and circle fill are judged more loosely in proportion to its linear size.
    Measured on the category development set: stars 26 -> 30 of 30, low-contrast slabs 10 -> 14 of 30, printed
    tiles 7 -> 9 of 25, no foreign case changed (validation: T brackets and chrome caps found more, a foreign
    case 0 -> 2)."""
    size = float(np.sqrt(area_ratio))
    if size >= 1.0:
        return tolerance
    return replace(tolerance, solidity=tolerance.solidity / size, circle_fill=tolerance.circle_fill ** (1.0 / size))


def judge(crop: np.ndarray, slices: tuple[slice, slice], edges: EdgeCues, support: ShapeStats,
           tolerance: ShapeTolerance, shapes: Silhouettes | None, depth: int,
           split_from: float, look: Look | None = None) -> list[tuple[np.ndarray, tuple[slice, slice], float]]:
    """One connected product-like region -> the objects in it: itself when it has the support's shape and an
    outline on the image's edges, else its watershed parts that do (a part too large for one object is split
    again, up to _MAX_SPLITS rounds); a region under `split_from` cells that fails is no object. `look`: the
    region's first look, where already taken."""
    area = float(crop.sum())
    judged = tolerance if depth == 0 else _split_part_tolerance(tolerance)
    look = look or first_look(crop, slices, edges, support, judged)
    several = False  # a region at the frame's edge too large for one item cut by it
    if look.border and shapes is not None:
        # Judged against the support cut by the frame's edge (engines.anyshape.border).
        cut = judge_cut(crop, slices, edges.cuts.shape, support, shapes)
        if cut is Cut.ITEM and look.outlined:
            return [(crop, slices, 0.5)]
        several = cut is Cut.SEVERAL
    elif look.border:
        if look.outlined and _BORDER_MIN_AREA * support.area <= area <= tolerance.max_area * support.area:
            return [(crop, slices, 0.5)]
    elif look.distance is not None and look.distance < 1.0:
        return [(crop, slices, 1.0 - look.distance)]
    if depth >= _MAX_SPLITS or (area < split_from and not several):
        return []
    if shapes is not None and depth == 0:
        fitted = fit_items(crop, edges.cuts[slices], shapes)
        if sum(int(m.sum()) for m, _ in fitted) >= _FITTED_SHARE * area:
            return [(m, slices, fit) for m, fit in fitted]
    parts = []
    for part, part_slices in _split(crop, slices, edges, support, _MARKER_DEPTH / (depth + 1)):
        parts += judge(part, part_slices, edges, support, tolerance, shapes, depth + 1, split_from)
    return parts


def _split_part_tolerance(tolerance: ShapeTolerance) -> ShapeTolerance:
    """Watershed parts are cut straight where they touched: their solidity and circle fill are judged more
    loosely, their area and elongation alike."""
    return replace(tolerance, solidity=1.5 * tolerance.solidity, circle_fill=tolerance.circle_fill ** 1.5)


def _split(crop: np.ndarray, slices: tuple[slice, slice], edges: EdgeCues, support: ShapeStats,
           marker_depth: float) -> list[tuple[np.ndarray, tuple[slice, slice]]]:
    """Marker-controlled watershed of a clump -> (part mask, part slices in the frame) pairs.

    The markers are the distance transform's peaks of the clump with its inner boundaries cut out (items in a
    pile), the flooding follows the clump's own distance transform."""
    from skimage.morphology import h_maxima  # imported when first needed: a slow import for every start-up
    from skimage.segmentation import watershed

    padded = np.pad(crop, 1).astype(np.uint8)
    inside = np.pad(crop & ~edges.cuts[slices], 1).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    depth = max(marker_depth * support.inner_radius, 0.5)
    markers, n = ndimage.label(h_maxima(distance, depth))
    if n < 2:
        return []
    flood = cv2.distanceTransform(padded, cv2.DIST_L2, 5) + distance
    parts = watershed(-flood, markers, mask=padded > 0)[1:-1, 1:-1]
    y0, x0 = slices[0].start, slices[1].start
    out = []
    for k, part_slices in enumerate(ndimage.find_objects(parts), start=1):
        if part_slices is None:
            continue
        part = parts[part_slices] == k
        global_slices = (slice(part_slices[0].start + y0, part_slices[0].stop + y0),
                         slice(part_slices[1].start + x0, part_slices[1].stop + x0))
        out.append((part, global_slices))
    return out
