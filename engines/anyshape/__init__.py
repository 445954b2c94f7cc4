"""CPU engines for products of any shape that need no weights: a pixel classifier learnt from the one-shot
support (ilastik's recipe), touching items split by marker-controlled watershed, and a shape agreement with the
support object (area, elongation, solidity, holes) deciding what is the product."""

from __future__ import annotations

from engines.anyshape.engines import (
    AnyShapeDensityMapGenerator,
    AnyShapeEncoder,
    AnyShapeMaskDecoder,
    AnyShapeSupport,
)
from engines.interfaces import EngineSet

__all__ = ["AnyShapeDensityMapGenerator", "AnyShapeEncoder", "AnyShapeMaskDecoder", "AnyShapeSupport",
           "build_anyshape_engines", "build_routed_engines"]

ENGINE_NAME = "anyshape-v3"
# The default embedded set: round supports to the outline engines, every other shape to the any-shape ones.
ROUTED_ENGINE_NAME = "embedded-v5"


def build_anyshape_engines() -> EngineSet:
    """The any-shape engines for every support (round ones too)."""
    return EngineSet(AnyShapeEncoder(), AnyShapeMaskDecoder(), AnyShapeDensityMapGenerator(), ENGINE_NAME,
                     products_side_by_side=True)


def build_routed_engines() -> EngineSet:
    """The default embedded engines: each support to the engines made for its shape (see engines.anyshape.routed)."""
    from engines.anyshape.routed import RoutedDensityMapGenerator, RoutedEncoder, RoutedMaskDecoder

    return EngineSet(RoutedEncoder(), RoutedMaskDecoder(), RoutedDensityMapGenerator(), ROUTED_ENGINE_NAME,
                     products_side_by_side=True)
