"""Exemplar-driven density map generator for the CPU.

The exemplar boxes give the target's appearance (a two-class colour/texture model fitted on their insides)
and its scale (their radii). Objects are then found one of two ways:
- colour-distinct targets: the appearance model segments them, and each object is a peak of the distance
  transform of that foreground, touching objects split at saddles and shading valleys;
- grey-on-grey targets: multi-scale exemplar correlation (a rotation-invariant radial template of the
  exemplars, normalised cross-correlation at 0.75-1.32x their radius), gated by colour.
Every object found contributes a Gaussian of unit mass, with a width set by the exemplars' scale, so the
map integrates to the count and each object's blob is what the IDM's threshold and contour split expect.
Large objects are processed on a pooled grid (about 6 cells per radius): same answer, faster.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from engines.embedded.appearance import foreground
from engines.embedded.correlation import (
    correlation_map,
    correlation_peaks,
    local_contrast,
    profile_contrast,
    radial_profile,
)
from engines.embedded.features import INTENSITY, RED_GREEN, YELLOW_BLUE, Descriptors
from engines.embedded.objects import find_centres, interior_valley_depth, object_map, valley_kernel, valley_strength
from engines.embedded.payload import boxes_to_grid, descriptors_for, inner_ellipses
from engines.interfaces import DensityOutput, ImageEmbedding

log = logging.getLogger(__name__)

# Density blob width in object radii: narrow enough that touching objects' blobs stay apart at the IDM's T.
_BLOB_SIGMA = 0.25
_POOL_RADIUS = 6.0
# Descriptor smoothing before classification, in object radii.
_SMOOTH = 0.2
# Correlation peaks: objects' peaks and the background's separate at a valley of the peak values' histogram
# (Otsu's threshold on them), kept within these bounds.
_CORRELATION_RANGE = (0.42, 0.6)
# A correlation peak's surroundings must vary at least this fraction as much as the exemplar's template.
_MIN_CONTRAST = 0.5
_MAX_COLOUR_DISTANCE = 3.0


class EmbeddedDensityMapGenerator:
    """DensityMapGenerator that works with any embedding: it computes its descriptors from the image unless
    the embedding is the embedded encoder's."""

    def density(
        self, image_rgb: np.ndarray, embedding: ImageEmbedding | None, exemplar_boxes: np.ndarray
    ) -> DensityOutput:
        """image_rgb uint8[H, W, 3], exemplar_boxes float[M, 4] -> density float32[H, W] and its count."""
        desc = descriptors_for(image_rgb, embedding)
        boxes = boxes_to_grid(desc, exemplar_boxes)
        if len(boxes):
            # Objects of more than ~6 cells' radius are found as well on a coarser grid, and faster.
            desc = desc.pooled(max(int(exemplar_radius(boxes)[0] // _POOL_RADIUS), 1))
        centres, radius = detect_objects(desc, exemplar_boxes)
        density = render_density(centres, radius, desc)
        return DensityOutput(density, float(len(centres)))


def exemplar_radius(grid_boxes: np.ndarray) -> tuple[float, float]:
    """(median, smallest) exemplar radius in grid cells, radius = sqrt(w * h) / 2."""
    w = np.maximum(grid_boxes[:, 2] - grid_boxes[:, 0], 1e-3)
    h = np.maximum(grid_boxes[:, 3] - grid_boxes[:, 1], 1e-3)
    sizes = np.sqrt(w * h) / 2
    return float(np.median(sizes)), float(sizes.min())


def detect_objects(desc: Descriptors, exemplar_boxes: np.ndarray) -> tuple[np.ndarray, float]:
    """-> (float32[K, 2] object centres (x, y) in grid cells, the exemplars' radius in cells).

    Colour-distinct targets are segmented by appearance and split at distance-transform saddles and
    shading valleys; grey-on-grey targets are found by exemplar correlation (brightness-invariant). Either
    way the appearance model's colour test rejects objects of another colour.
    """
    boxes = boxes_to_grid(desc, exemplar_boxes)
    if len(boxes) == 0:
        return np.zeros((0, 2), np.float32), 1.0
    radius, smallest = exemplar_radius(boxes)
    reference = inner_ellipses(desc.grid_hw, boxes)
    if not reference.any():
        return np.zeros((0, 2), np.float32), radius
    # Averaging over a fifth of the object evens out engraving and speckle before the per-cell decision.
    data = desc.smoothed(_SMOOTH * radius)
    fg = foreground(data, reference)
    intensity = desc.data[INTENSITY]
    colour_contrast = fg.colour_contrast()
    if fg.colour_distinct:
        valley = desc.cached(("valley", 0.0, valley_kernel(radius)), lambda: valley_strength(intensity, radius))
        interior = interior_valley_depth(intensity, reference, radius, valley)
        objects = object_map(fg.prob, intensity, radius, interior, valley)
        centres = find_centres(objects, min_radius=0.4 * smallest)[:, :2]
        how = "segmentation"
    else:
        profile = np.mean([radial_profile(intensity, box) for box in boxes], axis=0)
        ncc, _ = correlation_map(intensity, profile, radius)
        centres = correlation_peaks(ncc, radius, _CORRELATION_RANGE[0])
        centres = centres[peak_values(ncc, centres) >= peak_threshold(peak_values(ncc, centres))]
        # Correlation ignores contrast: a faint ripple in flat background must not pass for an object.
        contrast = local_contrast(intensity, radius)
        ix = np.clip(np.rint(centres[:, 0]).astype(int), 0, contrast.shape[1] - 1)
        iy = np.clip(np.rint(centres[:, 1]).astype(int), 0, contrast.shape[0] - 1)
        strong = contrast[iy, ix] >= _MIN_CONTRAST * profile_contrast(profile)
        centres = centres[strong & colour_matches(fg, data, centres)]
        how = "correlation"
    log.debug(
        "dmg: %s, radius %.1f cells, colour contrast %.1f, %d objects", how, radius, colour_contrast, len(centres)
    )
    return centres, radius


def peak_values(ncc: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """float32[K]: the correlation at each centre (grid cells)."""
    ix = np.clip(np.rint(centres[:, 0]).astype(int), 0, ncc.shape[1] - 1)
    iy = np.clip(np.rint(centres[:, 1]).astype(int), 0, ncc.shape[0] - 1)
    return ncc[iy, ix]


def peak_threshold(values: np.ndarray) -> float:
    """The correlation that separates objects' peaks from the background's: Otsu's threshold on the peak
    values (a frame's own split, so scenes with weaker or stronger matches are judged alike), bounded."""
    low, high = _CORRELATION_RANGE
    if len(values) < 4 or float(values.max() - values.min()) < 1e-3:
        return high
    hist, edges = np.histogram(values, bins=32)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist).astype(np.float64)
    mean = np.cumsum(hist * centres)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1e-9)
    return float(np.clip(centres[int(np.argmax(between[:-1]))], low, high))


def colour_matches(fg, data: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """bool[K]: the cells at `centres` have the target's colour (chroma within the target class)."""
    h, w = data.shape[1:]
    ix = np.clip(np.rint(centres[:, 0]).astype(int), 0, w - 1)
    iy = np.clip(np.rint(centres[:, 1]).astype(int), 0, h - 1)
    chroma = [RED_GREEN, YELLOW_BLUE]
    z = (data[chroma][:, iy, ix] - fg.target.mean[chroma, None]) / fg.target.std[chroma, None]
    return np.hypot(z[0], z[1]) < _MAX_COLOUR_DISTANCE


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
