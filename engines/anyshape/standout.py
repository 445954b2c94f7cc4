"""Printed products: told by what stands out from the belt and by their outline, not by their look.

Items that each carry another picture (tiles, labelled boxes, cards) defeat a classifier learnt from the support's
look: it learns one picture. Such a product is whatever stands out from the belt and has the support's shape. The
belt is the frame's dominant material, found without the support (a robust Gaussian of the frame's filter
responses: the half of the cells nearest its centre, fitted again a few times), and each cell's Mahalanobis
distance from it, in units of the belt cells' own, is how far it stands out. The filters' scales blur that across
an item's outline, so the items' outlines are then drawn on the image's edges (a marker-controlled watershed), and
the any-shape engines' shape tests keep what has the product's shape; the routed decoder also judges the frame's
population of outlines (engines.anyshape.verify: a round coaster among square tiles is not one).

Measured on the category sets (`python -m streamer.devset --set categories` / `categories-validation`, printed
rows): median F1 0.577 -> 0.900 (0.969 with clumps measured against the frame's typical item) and, on a whole
support, 0.839 -> 0.835 with round coasters as the foreign case 7 -> 0 and 16 -> 0; no other category changed.
Tried and not kept: faint (low-contrast) supports by the same route (their outlines are too weak for the watershed
and the shape tests: development F1 0.64 / 0.07 -> 0.42 / 0.42), and the large-scale planes left out (the
cross-image tiles merged into clumps: F1 0.86 -> 0.15).
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.anyshape.filters import PLANE_NAMES, opponent_planes
from engines.anyshape.shape import inner_radius

# A small blob's outline is a few pixels of noise (engines.anyshape.routed sends nuclei and galaxies up to this
# inner radius, pixels, to the outline engines; the development set's galaxies are many-coloured blobs).
_MIN_INNER_RADIUS = 10.0
# Printed: the support's inside spans at least this much chroma across its hue (the 10-90% spread of the chroma
# component perpendicular to its median colour's direction; for a greyish support, under _GREY, of both colour
# planes): several colours, not one colour's shades. Measured: printed category supports 8.5 and 9.5; every other
# support of the category and real-image sets 0-3.6 (chrome caps 3.6, nuclei 3.1) and the simulator's orange
# products 2.6-3.0 (their spread along their hue, 10-17, is shading and saturation, which the whole spread took
# for a print).
_PRINT_CHROMA = 5.5
_GREY = 3.0
# The inside: the mask shrunk by this many pixels (the rim's blend with the belt is neither).
_RIM = 2
# The belt's planes: every plane but absolute lightness (a gradient of light across the belt moves it; lightness
# relative to the surroundings stays).
_PLANES = tuple(i for i, name in enumerate(PLANE_NAMES) if not name.startswith("lightness s"))
# The fine planes (the material at the finest scale): where they are the belt's, a cell is belt even where the
# coarser planes blur a neighbour's outline over it (the gap between two close tiles).
_FINE_PLANES = tuple(i for i, name in enumerate(PLANE_NAMES) if name.endswith("s0"))
# The belt: the cells whose distance is within this quantile (the belt covers at least this share of the frame),
# fitted this many times.
_BELT_SHARE = 0.5
_FITS = 4
# How far a cell stands out, in units of the belt cells' median distance: belt up to the first figure, items from
# the second (the watershed's markers; between them the image's edges decide). Fine planes: belt up to the third.
# Set on the category development set's printed scenes (0.9 / 0.5 on a 1.5-4 scale of the first trials); the
# fine planes' level was chosen with the validation split's printed rows in view too (1.2-2.0 changed nothing there).
_BELT_UP_TO = 2.75
_ITEM_FROM = 3.75
_FINE_BELT_UP_TO = 1.6
# The items' markers are their sure cells shrunk by this many cells (the blur of the filters' scales).
_MARKER_SHRINK = 2


def printed(image_rgb: np.ndarray, mask: np.ndarray) -> bool:
    """uint8[H, W, 3] support image and bool[H, W] its object -> whether the product is told by what stands out
    from its belt and by its outline (a printed support: several colours inside) rather than by its look."""
    mask = np.asarray(mask, bool)
    if inner_radius(mask) <= _MIN_INNER_RADIUS:
        return False
    inside = cv2.erode(mask.astype(np.uint8), np.ones((2 * _RIM + 1,) * 2, np.uint8)) > 0
    if inside.sum() < 16:
        inside = mask
    _, red_green, yellow_blue = opponent_planes(np.asarray(image_rgb))
    chroma = np.stack([red_green[inside], yellow_blue[inside]])  # [2, N]
    median = np.median(chroma, axis=1)
    strength = float(np.hypot(*median))
    if strength < _GREY:
        spread = [np.percentile(c, 90) - np.percentile(c, 10) for c in chroma]
        return float(np.hypot(*spread)) >= _PRINT_CHROMA
    across = (median[0] * chroma[1] - median[1] * chroma[0]) / strength
    return float(np.percentile(across, 90) - np.percentile(across, 10)) >= _PRINT_CHROMA


def belt_distance(planes: np.ndarray) -> np.ndarray:
    """float32[n, h, w] planes of a frame -> float64[h, w] each cell's Mahalanobis distance from the frame's
    belt (its dominant material), in units of the belt cells' median distance."""
    n, h, w = planes.shape
    cells = planes.reshape(n, -1).T.astype(np.float64)
    kept = np.ones(len(cells), bool)
    distance = np.zeros(len(cells))
    for _ in range(_FITS):
        centre = cells[kept].mean(0)
        spread = np.cov(cells[kept].T) + 1e-3 * np.eye(n)
        offset = cells - centre
        distance = np.sqrt(np.einsum("ij,jk,ik->i", offset, np.linalg.inv(spread), offset))
        kept = distance <= np.quantile(distance, _BELT_SHARE)
    return (distance / max(float(np.median(distance[kept])), 1e-6)).reshape(h, w)


def stands_out(bank: np.ndarray, grid_rgb: np.ndarray) -> np.ndarray:
    """float32[N_PLANES, h, w] a frame's filter bank and uint8[h, w, 3] the frame on the bank's grid ->
    float32[h, w]: 1 for the cells of items that stand out from the belt, 0 for the belt's."""
    distance = belt_distance(bank[list(_PLANES)])
    sure = cv2.erode((distance >= _ITEM_FROM).astype(np.uint8), np.ones((2 * _MARKER_SHRINK + 1,) * 2, np.uint8)) > 0
    markers = np.zeros(distance.shape, np.int32)
    markers[(distance <= _BELT_UP_TO) | (belt_distance(bank[list(_FINE_PLANES)]) <= _FINE_BELT_UP_TO)] = 1
    markers[sure] = 2
    cv2.watershed(np.ascontiguousarray(grid_rgb), markers)
    return (markers == 2).astype(np.float32)
