"""Support prototype and query-support similarity (PerSense Eq. 1)."""

from __future__ import annotations

import cv2
import numpy as np

from engines.interfaces import ImageEmbedding
from streamer.errors import UserError


# Masks beyond this many pixels are averaged from 8-bit (0/255) rather than float32: a 50-megapixel support's
# mask was 200 MB as float; the coverage then has steps of 1/255 instead of float precision.
_FLOAT_COVERAGE_PIXELS = 16_000_000


def mask_coverage(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32[h, w]: the fraction of each cell of a (w, h) grid that the bool mask covers (area interpolation)."""
    if mask.size <= _FLOAT_COVERAGE_PIXELS:
        return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    ones = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)  # 0/1, no copy for bool
    coverage = cv2.resize(ones * np.uint8(255), size, interpolation=cv2.INTER_AREA)
    return coverage.astype(np.float32) / 255.0


def _valid_features(embedding: ImageEmbedding) -> np.ndarray:
    vh, vw = embedding.valid_hw
    return embedding.features[:, :vh, :vw]


def support_prototype(embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray:
    """Mean of the encoder's features inside the support mask, L2-normalised.

    Args:
        embedding: the support image's embedding.
        mask: bool[H, W] support mask at the support image's resolution.

    Returns:
        float32[C] prototype.
    """
    feats = _valid_features(embedding)
    c, vh, vw = feats.shape
    # Area interpolation keeps the fraction of each feature cell the mask covers; cells mostly inside count.
    coverage = mask_coverage(mask, (vw, vh))
    weights = coverage >= 0.5
    if not weights.any():
        # A small object can cover less than half of every cell: fall back to the cells it touches most.
        weights = coverage >= coverage.max() * 0.5
    if not weights.any() or coverage.max() <= 0:
        raise UserError("the support mask covers no part of the support image's feature grid")
    proto = feats[:, weights].mean(axis=1)
    norm = float(np.linalg.norm(proto))
    if norm <= 1e-12:
        raise UserError("the support object's features are all zero; choose another support image")
    return (proto / norm).astype(np.float32)


def similarity_grid(embedding: ImageEmbedding, prototype: np.ndarray) -> np.ndarray:
    """float32[vh, vw] cosine similarity between each valid feature cell and the prototype."""
    feats = _valid_features(embedding)
    c = feats.shape[0]
    flat = feats.reshape(c, -1)
    norms = np.sqrt(np.einsum("cn,cn->n", flat, flat))
    # einsum, not `@`: a BLAS matrix-vector product runs on a thread pool whose workers then spin for ~0.1 s,
    # holding a core the rest of the frame needs (measured: 81-86 ms of CPU per frame instead of 48).
    sim = np.einsum("c,cn->n", prototype, flat) / np.maximum(norms, 1e-12)
    return sim.reshape(feats.shape[1:]).astype(np.float32)


def to_frame(grid: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a map on the valid feature grid to the frame's (H, W)."""
    h, w = frame_hw
    if grid.shape == (h, w):
        return grid
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
