"""Object outlines at the frame's resolution: the classifier's regions (a few pixels a cell, and blurred by its
filters) snapped to the image's own edges by a marker-controlled watershed.

Each region's sure inside (its cells away from its outline) and the sure background (cells away from every
region) are markers; the band between them, as wide as the classifier's blur, is flooded from the markers
along the image's colour edges (OpenCV's watershed), so a mask ends where the product's edge is, corners and
holes included. A region cannot grow or shrink by more than the band.
"""

from __future__ import annotations

import cv2
import numpy as np

# The band's half-width in classifier cells: the filter bank's middle scale blurs about this far (measured: the
# classifier's 0.5 boundary lies within 1-1.5 cells of the true edge on the category set's scenes).
_BAND_CELLS = 1.5


def snap_to_edges(labels: np.ndarray, image_rgb: np.ndarray, stride: int) -> np.ndarray:
    """int32[h, w] region labels on the classifier's grid (0 background) and the frame uint8[H, W, 3] ->
    int32[H, W] the regions' labels at the frame's resolution, their outlines on the image's edges."""
    fh, fw = image_rgb.shape[:2]
    n = int(labels.max())
    if n == 0:
        return np.zeros((fh, fw), np.int32)
    grid = np.zeros((labels.shape[0] * stride, labels.shape[1] * stride), np.int32)
    grid[:] = np.kron(labels, np.ones((stride, stride), np.int32)) if stride > 1 else labels
    up = grid[:fh, :fw]
    band = max(1, int(round(_BAND_CELLS * stride)))
    edges = cv2.morphologyEx(up.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    unsure = cv2.dilate(edges.astype(np.uint8), np.ones((2 * band + 1, 2 * band + 1), np.uint8)) > 0
    markers = up.copy()
    background = n + 1
    markers[up == 0] = background
    markers[unsure] = 0
    # A region thinner than the band has no sure inside left: its grid cells' centres keep it seeded.
    lost = np.setdiff1d(np.arange(1, n + 1), np.unique(markers))
    if len(lost):
        keep = np.isin(up, lost) & ~cv2.dilate(edges.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        markers[keep] = up[keep]
    flooded = cv2.watershed(np.ascontiguousarray(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)), markers)
    flooded[(flooded == background) | (flooded < 0)] = 0
    return flooded
