"""CounTR (Liu et al., BMVC 2022), the paper's DMG2: class-agnostic few-shot counting as a density map generator.

`build_countr_dmg(config)` loads an export of `persense export countr` on the configured backend. Torch is only
imported for the torch backend and for export.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engines.countr.engine import CountrDMG

if TYPE_CHECKING:
    from streamer.config import CountrEngineConfig

    from engines.interfaces import DensityMapGenerator

__all__ = ["CountrDMG", "build_countr_dmg"]


def build_countr_dmg(config: "CountrEngineConfig") -> "DensityMapGenerator":
    """engines.countr section of the configuration -> CounTR density map generator (EngineError if unusable)."""
    from engines.countr.manifest import load_backend

    backend = load_backend(config.model_dir, config.backend)
    return CountrDMG(backend, name=f"countr-{config.backend}")
