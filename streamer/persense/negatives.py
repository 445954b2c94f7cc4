""""Not this": examples of what a product is not, and the objects that look more like them than like the product.

Engine-agnostic: every encoder's embedding has a feature grid (ImageEmbedding.features), and a prototype is the
mean of those features inside an example's mask (streamer.persense.similarity.support_prototype), for the product's
support and for each negative example alike. An object found in a frame is described the same way, by the mean
of the features under its mask; it is not counted for the product when that description is nearer (cosine) to a
negative example's prototype than to the product's.

Measured on the simulator's products mix (docs/products.md), the object's mean feature rather than the median of
its pixels' cosines: a rounded product's darker rim is, pixel by pixel, like a darker look-alike, while the mean
(a histogram of the object, as the prototype is one of its example) is not. Over 20 frames, with the examples of
one stretch of belt: look-alikes dropped 229 of 229 (median of pixels: 212), products dropped 0 of 467 (1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from engines.interfaces import ImageEmbedding
from streamer.errors import UserError
from streamer.persense.similarity import mask_coverage
from streamer.types import Instance

MAX_NEGATIVES = 16  # per product: each costs one similarity map per frame that has objects


@dataclass(frozen=True)
class Negative:
    """One "not this" example, reduced to what every frame needs."""

    prototype: np.ndarray  # float32[C], L2-normalised, on the product's engines' features
    negative_id: str  # content hash of the example's image and mask (names it in status and results)


def negative_id_for(image_rgb: np.ndarray, mask: np.ndarray) -> str:
    digest = hashlib.sha256(b"negative")
    digest.update(memoryview(np.ascontiguousarray(image_rgb)).cast("B"))
    digest.update(memoryview(np.packbits(mask)).cast("B"))
    digest.update(str(image_rgb.shape).encode())
    return digest.hexdigest()[:16]


def instance_features(embedding: ImageEmbedding, instances: list[Instance]) -> np.ndarray:
    """float32[N, C]: each instance's mean feature over its mask, L2-normalised (zeros where it covers no cell): the
    object described as a prototype describes its example.

    Each mask is reduced to the feature grid by area (a cell weighs the share of it the mask covers) and placed at
    its box's cell: within half a cell of exact, which a mean over the object does not feel."""
    vh, vw = embedding.valid_hw
    features = embedding.features[:, :vh, :vw]
    fh, fw = embedding.frame_hw
    sx, sy = vw / fw, vh / fh
    out = np.zeros((len(instances), features.shape[0]), np.float32)
    for k, inst in enumerate(instances):
        if inst.mask.size == 0:
            continue
        x0, y0, x1, y1 = inst.bbox
        gx0, gy0 = min(int(round(x0 * sx)), vw - 1), min(int(round(y0 * sy)), vh - 1)
        gw = min(max(int(round((x1 - x0) * sx)), 1), vw - gx0)
        gh = min(max(int(round((y1 - y0) * sy)), 1), vh - gy0)
        coverage = cv2.resize(inst.mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
        mean = np.einsum("chw,hw->c", features[:, gy0:gy0 + gh, gx0:gx0 + gw], coverage)
        norm = float(np.linalg.norm(mean))
        if norm > 1e-12:
            out[k] = mean / norm
    return out


def prototype_matches(embedding: ImageEmbedding, instances: list[Instance], prototypes: np.ndarray) -> np.ndarray:
    """float64[N, K]: the cosine similarity of each instance's mean feature to each prototype float32[K, C]."""
    if not instances:
        return np.zeros((0, len(prototypes)))
    return (instance_features(embedding, instances) @ np.asarray(prototypes, np.float32).T).astype(np.float64)


def matched_elsewhere(matches: np.ndarray) -> np.ndarray:
    """bool[N]: for matches float[N, 1 + K] (column 0 the product's own prototype, then K others), which objects
    match one of the others better than their own; none where K == 0."""
    if matches.shape[1] < 2:
        return np.zeros(len(matches), bool)
    return matches[:, 1:].max(axis=1) > matches[:, 0]


def object_cells(embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
    """float32[n, C]: the feature cells inside an example's mask (bool[H, W]), each L2-normalised: the example
    object as the negative check sees it (the cells its prototype averages)."""
    vh, vw = embedding.valid_hw
    features = embedding.features[:, :vh, :vw]
    coverage = mask_coverage(mask, (vw, vh))
    inside = coverage >= 0.5
    if not inside.any():
        inside = coverage >= coverage.max() * 0.5
    cells = features[:, inside].T.astype(np.float32)
    norms = np.linalg.norm(cells, axis=1, keepdims=True)
    return cells / np.maximum(norms, 1e-12)


def check_negative(prototype: np.ndarray, negative: np.ndarray, own_cells: np.ndarray | None) -> None:
    """UserError where a negative example (its prototype float32[C]) would silence the product itself: it is the
    product's own example (the same prototype), or the product's example object (its cells float32[n, C], where
    known) matches it at least as well as the product's prototype."""
    if float(np.dot(prototype, negative)) >= 0.999:
        raise UserError("this negative example is the product's own example (the same look): it would silence "
                        "the product; pick an object of another kind")
    if own_cells is not None and len(own_cells):
        own, other = float(np.median(own_cells @ prototype)), float(np.median(own_cells @ negative))
        if other >= own:
            raise UserError(f"this negative example looks more like the product than the product's own example "
                            f"does (match {other:.2f} against {own:.2f}): it would silence the product; pick an "
                            "object of another kind")
