"""The embedded image encoder: working-grid descriptors (for the decoder and density generator) and their
soft-binned embedding (for the support prototype and the cosine similarity map)."""

from __future__ import annotations

import numpy as np

from engines.embedded.features import compute_descriptors, embed
from engines.interfaces import ImageEmbedding
from streamer.errors import EngineError


class EmbeddedImageEncoder:
    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        """uint8[H, W, 3] RGB -> features float32[96, h, w] (the grid pooled 2x) with Descriptors as payload."""
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise EngineError(
                f"the embedded encoder needs a uint8 RGB image [H, W, 3], got {image_rgb.dtype} {image_rgb.shape}"
            )
        desc = compute_descriptors(image_rgb)
        features = embed(desc, pool=2)
        return ImageEmbedding(features, tuple(image_rgb.shape[:2]), features.shape[1:], payload=desc)
