"""Segment Anything engines: exported SAM models on ONNX Runtime, TensorRT or torch.

`load_sam(model_dir, backend)` gives the model API (encode / decode / predict); `build_sam_engines(model_dir, backend)`
gives
the pipeline's EngineSet (SAM encoder and batched decoder, plus the exemplar-correlation density map generator).
"""

from __future__ import annotations

from pathlib import Path

from engines.interfaces import EngineSet
from engines.sam.dmg import SamCorrelationDmg
from engines.sam.model import BACKENDS, SamModel, load_sam

__all__ = ["BACKENDS", "SamCorrelationDmg", "SamModel", "build_sam_engines", "load_sam"]


def build_sam_engines(model_dir: Path, backend: str = "onnxruntime") -> EngineSet:
    """An export of `persense export sam` on a backend -> EngineSet(encoder=decoder=the SAM model,
    dmg=correlation DMG).

    The name (model type + manifest checksum) keys the support cache, so re-exported weights never reuse
    stale prototypes.
    """
    model = load_sam(model_dir, backend)
    return EngineSet(encoder=model, decoder=model, dmg=SamCorrelationDmg(), name=model.name)
