"""CounTR (Liu et al., BMVC 2022), the paper's DMG2: class-agnostic few-shot counting as a density map generator.

`build_countr_dmg(model_dir, backend)` loads an export of `persense export countr` on the configured backend. Torch is only
imported for the torch backend and for export.
"""

from __future__ import annotations

from pathlib import Path

from engines.countr.engine import CountrDMG
from engines.interfaces import DensityMapGenerator

__all__ = ["CountrDMG", "build_countr_dmg"]


def build_countr_dmg(model_dir: Path, backend: str = "onnxruntime") -> DensityMapGenerator:
    """An export of `persense export countr` on a backend -> CounTR density map generator (EngineError if
    unusable)."""
    from engines.countr.manifest import load_backend

    return CountrDMG(load_backend(model_dir, backend), name=f"countr-{backend}")
