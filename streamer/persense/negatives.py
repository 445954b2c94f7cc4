""""Not this": what an object looks like on the encoder's features, and whether it looks more like an example to
reject (a negative) than like the product.

Engine-agnostic: every encoder's embedding has a feature grid (ImageEmbedding.features), and the product's
prototype is the mean of those features inside its support mask (streamer.persense.similarity). An object found
in a frame is described the same way, by the mean of the features under its mask; it is dropped when its
description is nearer (cosine) to a negative example's prototype than to the product's. The same test, with the
other products' prototypes, decides which product keeps an object two products claim (streamer.persense.claims).
"""

from __future__ import annotations

import cv2
import numpy as np

from engines.interfaces import ImageEmbedding
from streamer.types import Instance


def instance_features(embedding: ImageEmbedding, instances: list[Instance]) -> np.ndarray:
    """float32[N, C]: each instance's mean feature over its mask, L2-normalised (zeros for an instance that covers
    no feature cell).

    Each mask is reduced to the feature grid by area (the fraction of each cell it covers weighs the cell), so a
    thin object two cells wide is still described by its own cells and a rim of background counts in proportion.
    """
    vh, vw = embedding.valid_hw
    features = embedding.features[:, :vh, :vw]
    c = features.shape[0]
    fh, fw = embedding.frame_hw
    sx, sy = vw / fw, vh / fh
    out = np.zeros((len(instances), c), np.float32)
    for k, inst in enumerate(instances):
        x0, y0, x1, y1 = inst.bbox
        # The mask reduced to the grid by area (each cell weighed by the share of it the mask covers), placed at
        # its box's cell: within half a cell of exact, which a mean over the object does not feel.
        gx0, gy0 = min(int(round(x0 * sx)), vw - 1), min(int(round(y0 * sy)), vh - 1)
        gw = min(max(int(round((x1 - x0) * sx)), 1), vw - gx0)
        gh = min(max(int(round((y1 - y0) * sy)), 1), vh - gy0)
        if inst.mask.size == 0:
            continue
        coverage = cv2.resize(inst.mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
        weight = float(coverage.sum())
        if weight <= 0:
            continue
        mean = np.einsum("chw,hw->c", features[:, gy0:gy0 + gh, gx0:gx0 + gw], coverage) / weight
        norm = float(np.linalg.norm(mean))
        if norm > 1e-12:
            out[k] = mean / norm
    return out


def nearer_elsewhere(features: np.ndarray, own: np.ndarray, others: np.ndarray) -> np.ndarray:
    """bool[N]: which of the objects' features float32[N, C] are nearer (cosine) to one of the prototypes
    float32[K, C] than to `own` float32[C] (all L2-normalised); none where K == 0."""
    if len(others) == 0 or len(features) == 0:
        return np.zeros(len(features), bool)
    own_match = features @ own
    best_other = (features @ np.asarray(others, np.float32).T).max(axis=1)
    return best_other > own_match
