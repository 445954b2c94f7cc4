"""Load CounTR's public FSC-147 checkpoint (`FSC147.pth`) into `engines.countr.model.CounTR`, strictly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch

from engines.errors import EngineError

from engines.countr.model import CounTR, CountrSpec
from engines.torch_files import checkpoint_file, load_problem

log = logging.getLogger(__name__)

# How many names an error or log line lists before it says "and N more".
_NAMES_SHOWN = 5


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_NAMES_SHOWN])
    return shown + (f" and {len(keys) - _NAMES_SHOWN} more" if len(keys) > _NAMES_SHOWN else "")


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


class _Ignored:
    """Stands in for any non-tensor Python object in a checkpoint (the training script's arguments and the like):
    built from nothing, its state discarded, so no code from the file runs."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The checkpoint's weights: `torch.load(path)["model"]` (a bare state dict is accepted too).

    Loaded with weights_only=True, so no code from the file runs; Python objects stored next to the weights
    (training checkpoints often keep the script's argparse.Namespace) are replaced by inert stand-ins.
    """
    path = checkpoint_file(path, "CounTR checkpoint")
    try:
        foreign = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if foreign:
            log.debug("CounTR checkpoint %s: not loading Python objects of type %s", path, ", ".join(foreign))
        with torch.serialization.safe_globals([(_Ignored, name) for name in foreign]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for truncated or foreign files
        raise EngineError(f"cannot read CounTR checkpoint {path}: {load_problem(exc)}") from None
    state = raw.get("model", raw) if isinstance(raw, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EngineError(f"CounTR checkpoint {path}: expected a dict with a 'model' state dict of tensors")
    return dict(state)


def check_state_dict(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Every key the model has must be in `state` with the same shape; the rest is ignored (logged once).

    Returns the subset of `state` the model uses. Raises EngineError naming the first missing or misshapen keys.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise EngineError(f"CounTR checkpoint {source}: missing key(s) {_names(missing)}")
    wrong = [
        f"{k} is {_shape(state[k].shape)}, expected {_shape(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise EngineError(f"CounTR checkpoint {source}: wrong shape: {_names(wrong)}")
    unused = sorted(k for k in state if k not in expected)
    if unused:
        # The public checkpoint keeps MAE pre-training leftovers (e.g. its pixel decoder); they are not part
        # of the counter.
        log.info("CounTR checkpoint %s: ignoring %d key(s) the counter does not use: %s", source, len(unused),
                 _names(unused))
    return {k: state[k].to(torch.float32) for k in expected}


def load_countr(path: Path | str, spec: CountrSpec = CountrSpec()) -> CounTR:
    """Checkpoint file -> CounTR in eval mode on the CPU, float32."""
    model = CounTR(spec)
    state = check_state_dict(model, read_state_dict(path), str(path))
    model.load_state_dict(state, strict=True)
    return model.eval()
