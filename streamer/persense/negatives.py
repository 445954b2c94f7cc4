""""Not this": examples of what a product is not, and the objects that look more like them than like the product.

Engine-agnostic: every encoder's embedding has a feature grid (ImageEmbedding.features), and a prototype is the
mean of those features inside an example's mask (streamer.persense.similarity.support_prototype), for the product's
support and for each negative example alike. An object found in a frame matches a prototype by the median cosine
similarity of its pixels to it (the same measure as presence's, streamer.persense.presence.instance_similarity).
An object that matches a negative better than the product's own prototype is not counted for the product.

Measured on the simulator's products mix (streamer/simulator/mix.py, docs/products.md): the median over pixels
rather than the cosine of the object's mean feature, because a thin object's rim of belt pulls its mean towards
every prototype alike (mean feature: 110 of 111 look-alikes dropped; median: 111 of 111; no product dropped either
way).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from engines.interfaces import ImageEmbedding
from streamer.errors import UserError
from streamer.persense.presence import instance_similarity
from streamer.persense.similarity import mask_coverage, similarity_grid, to_frame
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


def prototype_matches(embedding: ImageEmbedding, instances: list[Instance], prototypes: np.ndarray) -> np.ndarray:
    """float64[N, K]: each instance's median cosine similarity over its mask to each prototype float32[K, C]."""
    out = np.zeros((len(instances), len(prototypes)))
    if not instances:
        return out
    for k, prototype in enumerate(prototypes):
        similarity = to_frame(similarity_grid(embedding, prototype), tuple(embedding.frame_hw))
        out[:, k] = instance_similarity(instances, similarity)
    return out


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
