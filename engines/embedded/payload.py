"""What the embedded encoder hands to the embedded decoder and density map generator."""

from __future__ import annotations

import numpy as np

from engines.embedded.features import Descriptors, compute_descriptors
from engines.interfaces import ImageEmbedding


# Key of the chroma float[2] of a frame's most support-like cells, kept for the support's later calls
# (Descriptors.remember: each product's view its own): the decoder's target-guided calls set it, the density map
# generator reads it (see decoder.support_chroma).
SUPPORT_CHROMA = ("support chroma",)


def descriptors_for(image_rgb: np.ndarray | None, embedding: ImageEmbedding | None) -> Descriptors:
    """The embedding's descriptors when it is the embedded encoder's (same frame), else computed from the image."""
    payload = getattr(embedding, "payload", None)
    if isinstance(payload, Descriptors) and (image_rgb is None or payload.frame_hw == tuple(image_rgb.shape[:2])):
        return payload
    if image_rgb is None:
        raise ValueError("the embedded engines need their own encoder's embedding or the image")
    return compute_descriptors(image_rgb)


def boxes_to_grid(desc: Descriptors, boxes: np.ndarray) -> np.ndarray:
    """float[M, 4] frame (x0, y0, x1, y1) boxes -> float64[M, 4] grid boxes (edges, x1/y1 exclusive)."""
    h, w = desc.grid_hw
    fh, fw = desc.frame_hw
    scale = np.array([w / fw, h / fh, w / fw, h / fh])
    return np.asarray(boxes, np.float64).reshape(-1, 4) * scale
