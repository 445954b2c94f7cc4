"""CPU engines that need no weights: colour/texture descriptors, exemplar-driven density (outline candidates
verified by correlation), star-convex masks from rays."""

from __future__ import annotations

from engines.embedded.decoder import EmbeddedMaskDecoder
from engines.embedded.dmg import EmbeddedDensityMapGenerator
from engines.embedded.encoder import EmbeddedImageEncoder
from engines.interfaces import DensityMapGenerator, EngineSet

__all__ = [
    "EmbeddedDensityMapGenerator",
    "EmbeddedImageEncoder",
    "EmbeddedMaskDecoder",
    "build_embedded_dmg",
    "build_embedded_engines",
    "build_outline_engines",
]

ENGINE_NAME = "embedded-v2"


def build_embedded_engines() -> EngineSet:
    """The default CPU engines: each support to the engines made for its shape (engines.anyshape.routed):
    round and small-blob products to these outline engines, every other shape to the any-shape engines."""
    from engines.anyshape import build_routed_engines

    return build_routed_engines()


def build_outline_engines() -> EngineSet:
    """These outline engines alone, for every support (the default before the any-shape engines)."""
    return EngineSet(EmbeddedImageEncoder(), EmbeddedMaskDecoder(), EmbeddedDensityMapGenerator(), ENGINE_NAME,
                     products_side_by_side=True)


def build_embedded_dmg() -> DensityMapGenerator:
    return EmbeddedDensityMapGenerator()
