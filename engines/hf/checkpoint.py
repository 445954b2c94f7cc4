"""Load a Hugging Face checkpoint directory strictly: the right model type, every tensor present, every shape right.

`from_pretrained` alone warns about missing weights and initialises them at random, and its size-mismatch error
names no tensor; a gate or label extractor running on random weights would fail silently. Here each problem is one
line naming the directory and the tensor.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from engines.errors import EngineError, first_line

log = logging.getLogger(__name__)

# How many tensor names an error lists before it says "and N more".
_NAMES_SHOWN = 3


def _names(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_NAMES_SHOWN])
    return shown + (f" and {len(keys) - _NAMES_SHOWN} more" if len(keys) > _NAMES_SHOWN else "")


def _shape(shape) -> str:
    return "x".join(str(int(d)) for d in shape) or "scalar"


def read_small_json(path: Path, missing: str, limit: int = 1 << 20):
    """A JSON file of at most `limit` bytes (a config or manifest: a few kB; a huge file here is something else),
    parsed; EngineError with `missing` when there is none, one line naming the file for anything else."""
    try:
        if path.stat().st_size > limit:
            raise EngineError(f"{path} is over {limit >> 10} KiB: not a model's config or manifest")
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(missing) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"cannot read {path}: {first_line(exc)}") from None


def checkpoint_config(model_dir: Path, model_type: str, what: str) -> dict:
    """config.json of a Hugging Face checkpoint directory, checked to be of `model_type` (EngineError if not)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EngineError(f"{what} checkpoint directory not found: {model_dir}")
    config = read_small_json(model_dir / "config.json",
                             f"{what} checkpoint {model_dir} has no config.json (a save_pretrained directory?)")
    found = config.get("model_type") if isinstance(config, dict) else None
    if found != model_type:
        raise EngineError(
            f"{what} checkpoint {model_dir} is a {found or 'unknown'!r} model, not {model_type!r}: wrong directory?"
        )
    return config


def load_model(model_class, model_dir: Path, model_type: str, what: str, **options):
    """`model_class.from_pretrained(model_dir, **options)` from local files only, in eval mode; EngineError with one
    line when the directory is of another model, or a tensor is missing, of the wrong shape, or unreadable."""
    model_dir = Path(model_dir)
    checkpoint_config(model_dir, model_type, what)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its missing-weights warning is replaced by the error below
    try:
        model, info = model_class.from_pretrained(
            model_dir, local_files_only=True, output_loading_info=True, ignore_mismatched_sizes=True, **options
        )
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise EngineError(f"{what} checkpoint {model_dir}: cannot load: {first_line(exc)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    mismatched = info.get("mismatched_keys") or ()
    if mismatched:
        name, found, expected = sorted(mismatched, key=lambda item: item[0])[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise EngineError(
            f"{what} checkpoint {model_dir}: tensor {name} is {_shape(found)}, its config.json says "
            f"{_shape(expected)}{more}"
        )
    missing = info.get("missing_keys") or ()
    if missing:
        raise EngineError(f"{what} checkpoint {model_dir} lacks tensor(s) {_names(missing)}")
    unexpected = info.get("unexpected_keys") or ()
    if unexpected:
        log.debug("%s checkpoint %s: unused tensors %s", what, model_dir, _names(unexpected))
    return model.eval()


def load_processor(processor_class, model_dir: Path, what: str):
    """The checkpoint's processor (image processor + tokenizer) from local files only (EngineError if unreadable)."""
    try:
        return processor_class.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EngineError(f"{what} checkpoint {model_dir}: cannot load its processor/tokenizer: {first_line(exc)}") \
            from None
