"""The joint watershed behind the embedded decoder: all prompts of a call flood the working grid together,
so touching objects split where their basins meet instead of each prompt claiming the whole clump.

Foreground comes from a two-class appearance model fitted on the prompts' own cells (and, on the guided
pass, on the cells most similar to the support prototype). Then, by scene kind:
- colour-distinct targets: the foreground is the objects' support; inside it the landscape is low in
  object cores and rises at distance-transform saddles and shading valleys; prompts with no saddle between
  them are one object and share a marker; cores no prompt reached get markers of their own so that an
  unprompted neighbour is not swallowed;
- grey-on-grey targets (colour says little): the landscape is the intensity gradient, so each prompt's
  region stops at its object's outline; large confidently-background areas are the background marker.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from scipy import ndimage as ndi

from engines.embedded.appearance import Foreground, foreground
from engines.embedded.features import INTENSITY, Descriptors, thin
from engines.embedded.objects import (
    disk,
    interior_valley_depth,
    merge_groups,
    object_map,
    unreached_centres,
    valley_kernel,
    valley_strength,
)
from engines.interfaces import PromptGuidance

_BACKGROUND_PROB = 0.15
# Descriptor smoothing (cells) before the decoder's appearance model.
_DATA_SMOOTH = 0.8
# Half-size (cells) of the window a single prompt is decoded in.
_WINDOW = 56
_BACKGROUND_OPENING = 3.0
_EDGE_SCALE = 1.5


def segment_prompts(
    desc: Descriptors, cells: np.ndarray, guidance: PromptGuidance | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Grow every prompt (float[N, 2] grid (x, y)) into a region.

    Returns:
        labels int32[h, w] (g + 1 for object group g, 0 elsewhere), groups int[N] each prompt's group,
        prob float32[h, w] foreground probability, radius (cells; 0 when unknown).
    """
    data = desc.smoothed(_DATA_SMOOTH)
    reference = data[:, _reference(desc.grid_hw, cells, guidance)]
    if len(cells) != 1:
        fg = foreground(data, reference)
        if not fg.colour_distinct:
            return _by_edges(data, fg, cells, data[0].size)
        intensity = data[INTENSITY]

        def valleys(radius: float) -> np.ndarray:
            # Both decoding passes of a frame work on this grid: they share its valley maps.
            key = ("valley", _DATA_SMOOTH, valley_kernel(radius))
            return desc.cached(key, lambda: valley_strength(intensity, radius))

        return _by_shape(data, fg, cells, data[0].size, valleys)
    # One prompt (the initial exemplar): its object lies in a window around it; the reference may come
    # from the whole frame (the most support-like cells), the work stays local.
    gh, gw = desc.grid_hw
    half = max(_WINDOW, int(0.15 * max(gh, gw)))
    x, y = int(np.clip(round(cells[0, 0]), 0, gw - 1)), int(np.clip(round(cells[0, 1]), 0, gh - 1))
    x0, y0, x1, y1 = max(x - half, 0), max(y - half, 0), min(x + half + 1, gw), min(y + half + 1, gh)
    fg = foreground(np.ascontiguousarray(data[:, y0:y1, x0:x1]), reference)
    by = _by_shape if fg.colour_distinct else _by_edges
    local, groups, prob_local, radius = by(data[:, y0:y1, x0:x1], fg, cells - np.array([x0, y0]), gh * gw)
    labels = np.zeros((gh, gw), np.int32)
    prob = np.zeros((gh, gw), np.float32)
    labels[y0:y1, x0:x1] = local
    prob[y0:y1, x0:x1] = prob_local
    return labels, groups, prob, radius


def _reference(grid_hw: tuple[int, int], cells: np.ndarray, guidance: PromptGuidance | None) -> np.ndarray:
    """bool[h, w]: the prompts' cells (3 x 3) and, with guidance, the cells most similar to the support."""
    gh, gw = grid_hw
    ref = np.zeros((gh, gw), np.uint8)
    ix, iy = _cell_index(cells, grid_hw)
    ref[iy, ix] = 1
    ref = cv2.dilate(ref, np.ones((3, 3), np.uint8)).astype(bool)
    if guidance is not None and guidance.similarity.size:
        sim = cv2.resize(guidance.similarity.astype(np.float32), (gw, gh), interpolation=cv2.INTER_LINEAR)
        top, mid = float(sim.max()), float(np.median(thin(sim.ravel())))
        ref |= sim >= top - 0.15 * (top - mid)
    return ref


def _cell_index(cells: np.ndarray, grid_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    gh, gw = grid_hw
    ix = np.clip(np.rint(cells[:, 0]).astype(int), 0, gw - 1)
    iy = np.clip(np.rint(cells[:, 1]).astype(int), 0, gh - 1)
    return ix, iy


def _snap(ix: np.ndarray, iy: np.ndarray, allowed: np.ndarray, prob: np.ndarray, reach: int = 2):
    """Move prompts that are not on `allowed` cells to the most probable allowed cell within `reach`."""
    ix, iy = ix.copy(), iy.copy()
    gh, gw = allowed.shape
    for k in np.flatnonzero(~allowed[iy, ix]):
        y0, y1 = max(iy[k] - reach, 0), min(iy[k] + reach + 1, gh)
        x0, x1 = max(ix[k] - reach, 0), min(ix[k] + reach + 1, gw)
        window = np.where(allowed[y0:y1, x0:x1], prob[y0:y1, x0:x1], -1.0)
        if window.max() >= 0:
            dy, dx = np.unravel_index(int(np.argmax(window)), window.shape)
            iy[k], ix[k] = y0 + dy, x0 + dx
    return ix, iy


def _by_shape(
    data: np.ndarray,
    fg: Foreground,
    cells: np.ndarray,
    frame_cells: int,
    valleys: Callable[[float], np.ndarray] | None = None,
):
    """`valleys(radius)`: valley_strength of data's intensity, where the caller caches it."""
    gh, gw = fg.prob.shape
    intensity = data[INTENSITY]
    ix, iy = _cell_index(cells, (gh, gw))
    raw = cv2.distanceTransform((fg.prob > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    ix, iy = _snap(ix, iy, raw > 0, fg.prob)
    # The objects' inradius: the distance transform at the prompts (the density peaks sit at object
    # centres); a single prompt (the initial exemplar, at the most support-like cell) may sit off-centre,
    # so take the distance-transform peak near it.
    at = raw[iy, ix]
    if len(at) == 1:
        at = np.array([_climb(raw, int(iy[0]), int(ix[0]))])
    radius = float(np.clip(np.percentile(at, 75), 1.5, max(gh, gw) / 4))
    valley = valleys(radius) if valleys is not None else valley_strength(intensity, radius)
    interior = _interior_valley(intensity, raw, iy, ix, radius, valley)
    objects = object_map(fg.prob, intensity, radius, interior, valley)
    snapped = np.column_stack([ix, iy]).astype(np.float64)
    groups = merge_groups(snapped, objects)
    n_groups = int(groups.max()) + 1
    # Rims are darker and mix with the background: take weak foreground that borders the confident one.
    near = cv2.dilate(objects.foreground.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    support = objects.foreground | (near & (fg.prob > 0.3))
    background = n_groups + 1
    markers = np.zeros((gh, gw), np.int32)
    markers[~support] = background
    for k, (x, y) in enumerate(unreached_centres(objects, snapped)):
        markers[int(round(y)), int(round(x))] = background + 1 + k
    markers[iy, ix] = np.where(support[iy, ix], groups + 1, markers[iy, ix])
    elevation = _shape_landscape(support, intensity, objects.valley, radius, interior)
    # Background cells are pre-claimed; at the top of the landscape they never flood into an object.
    elevation[~support] = 255
    flooded = ndi.watershed_ift(elevation, markers)
    labels = np.where(support & (flooded <= n_groups), flooded, 0).astype(np.int32)
    return labels, groups, fg.prob, radius


def _climb(dist: np.ndarray, y: int, x: int) -> float:
    """The value of the local maximum of `dist` reached by steepest ascent from (y, x)."""
    h, w = dist.shape
    for _ in range(h + w):
        y0, y1, x0, x1 = max(y - 1, 0), min(y + 2, h), max(x - 1, 0), min(x + 2, w)
        window = dist[y0:y1, x0:x1]
        dy, dx = np.unravel_index(int(np.argmax(window)), window.shape)
        if window[dy, dx] <= dist[y, x]:
            break
        y, x = y0 + dy, x0 + dx
    return float(dist[y, x])


def _interior_valley(
    intensity: np.ndarray, raw_dist: np.ndarray, iy: np.ndarray, ix: np.ndarray, radius: float, valley: np.ndarray
) -> float:
    """Valley depth inside the prompted objects' cores (their cells deeper than half a radius)."""
    core = np.zeros(raw_dist.shape, np.uint8)
    core[iy, ix] = 1
    core = cv2.dilate(core, np.ones((3, 3), np.uint8)).astype(bool) & (raw_dist > 0.5 * radius)
    if core.sum() < 9:
        core = raw_dist > 0.5 * radius
    return interior_valley_depth(intensity, core, radius, valley)


def _shape_landscape(
    support: np.ndarray, intensity: np.ndarray, valley: np.ndarray, radius: float, interior: float
) -> np.ndarray:
    """uint8[h, w] elevation inside the foreground: 0 in object cores, rising towards distance-transform
    saddles and shading valleys deeper than the objects' own interior valleys."""
    dist = cv2.distanceTransform(support.astype(np.uint8), cv2.DIST_L2, 5)
    shape = 1.0 - np.minimum(dist / max(radius, 1.0), 1.0)
    level = max(float(np.median(thin(intensity[support]))) if support.any() else 50.0, 20.0)
    depth = max(0.2, 2.0 * interior) * level
    elevation = 0.5 * shape + 0.5 * np.minimum(valley / depth, 1.0)
    return np.clip(elevation * 254.0, 0, 254).astype(np.uint8)


def _by_edges(data: np.ndarray, fg: Foreground, cells: np.ndarray, frame_cells: int):
    gh, gw = fg.prob.shape
    ix, iy = _cell_index(cells, (gh, gw))
    n = len(cells)
    groups = np.arange(n)
    # Outlines are large-scale steps, engraving is fine detail: the gradient at a coarser scale favours outlines.
    intensity = cv2.GaussianBlur(data[INTENSITY], (0, 0), _EDGE_SCALE)
    gx = cv2.Sobel(intensity, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(intensity, cv2.CV_32F, 0, 1, ksize=3)
    grad = np.hypot(gx, gy)
    scale = max(float(np.percentile(thin(grad.ravel(), 16384), 99)), 1e-3)
    elevation = np.clip(grad / scale * 254.0, 0, 254).astype(np.uint8)
    markers = np.zeros((gh, gw), np.int32)
    background = _background(fg.prob, max(50, 0.005 * frame_cells))
    if n >= 2:
        # Dark engraving inside an object can join the background through a gap in the outline; no
        # background marker nearer a prompt than half the distance to its nearest neighbour prompt.
        nearest = np.hypot(cells[:, None, 0] - cells[None, :, 0], cells[:, None, 1] - cells[None, :, 1])
        np.fill_diagonal(nearest, np.inf)
        reach = 0.5 * float(np.median(nearest.min(axis=1)))
        seeds = np.ones((gh, gw), np.uint8)
        seeds[iy, ix] = 0
        background &= cv2.distanceTransform(seeds, cv2.DIST_L2, 5) > reach
    markers[background] = n + 1
    markers[iy, ix] = groups + 1
    flooded = ndi.watershed_ift(elevation, markers)
    labels = np.where(flooded <= n, flooded, 0).astype(np.int32)
    return labels, groups, fg.prob, 0.0


def _background(prob: np.ndarray, min_area: float) -> np.ndarray:
    """bool[h, w]: confidently-background areas of at least `min_area` cells (dark spots inside objects are
    not background); the grid's border when there are none."""
    low = (prob < _BACKGROUND_PROB).astype(np.uint8)
    # Thin dark structures (engraving, outlines, the gaps between objects) are no background evidence.
    low = cv2.morphologyEx(low, cv2.MORPH_OPEN, disk(_BACKGROUND_OPENING))
    # Labels and a bincount: several times cheaper than OpenCV's per-component stats.
    n, labels = cv2.connectedComponents(low, connectivity=4)
    large = np.bincount(labels.ravel(), minlength=n) >= min_area
    large[0] = False
    background = large[labels]
    if not background.any():
        background = np.zeros(prob.shape, bool)
        background[[0, -1], :] = True
        background[:, [0, -1]] = True
    return background
