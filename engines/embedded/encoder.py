"""The embedded image encoder: working-grid descriptors (for the decoder and density generator) and their
soft-binned embedding (for the support prototype and the cosine similarity map)."""

from __future__ import annotations

import sys

import numpy as np

from engines.embedded.features import compute_descriptors, embed, embed_shape
from engines.interfaces import ImageEmbedding
from engines.errors import EngineError


# Feature buffers an encoder keeps for reuse (one in use by the current frame, one spare).
_SPARE_BUFFERS = 2


class EmbeddedImageEncoder:
    def __init__(self) -> None:
        # A fresh 7 MB feature array per frame costs ~1800 page faults (several ms on a 2-core machine);
        # a buffer is written again only when no embedding, view or caller references it any more.
        self._buffers: list[np.ndarray] = []
        self._free_refs = _refs_held_by_pool()

    def _free_buffer(self, shape: tuple[int, int, int]) -> np.ndarray:
        for buffer in self._buffers:
            # Referenced only as the pool references it: nobody else can see the reuse.
            if buffer.shape == shape and sys.getrefcount(buffer) <= self._free_refs:
                return buffer
        buffer = np.empty(shape, np.float32)
        self._buffers = [buffer] + self._buffers[: _SPARE_BUFFERS - 1]
        return buffer

    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        """uint8[H, W, 3] RGB -> features float32[96, h, w] (the grid pooled 2x) with Descriptors as payload."""
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise EngineError(
                f"the embedded encoder needs a uint8 RGB image [H, W, 3], got {image_rgb.dtype} {image_rgb.shape}"
            )
        desc = compute_descriptors(image_rgb)
        features = embed(desc, pool=2, out=self._free_buffer(embed_shape(desc.grid_hw, pool=2)))
        return ImageEmbedding(features, tuple(image_rgb.shape[:2]), features.shape[1:], payload=desc)


def _refs_held_by_pool() -> int:
    """The reference count `_free_buffer` sees for a buffer only its pool holds (measured the same way,
    since interpreters count borrowed and loop references differently)."""
    pool = [np.empty(0, np.float32)]
    for probe in pool:
        refs = sys.getrefcount(probe)
    return refs
