"""The model directory `persense export countr` writes, and the backend a configuration asks for from it.

DIR/manifest.json  model_type "countr", format, the ONNX file name, the checkpoint it came from (the torch backend
                   loads it), the model spec, input/output shapes, pre-processing constants, library versions,
                   checksums, and (after --tensorrt) the engine profile.
DIR/countr.onnx    windows float32[B, 3, 384, 384], exemplars float32[G, S, 3, 64, 64] -> density float32[G, B, 384, 384]
DIR/countr.<gpu>.trt<version>.<profile>.onnx-<sha256 prefix>.engine   TensorRT engine (optional; the runtime
                   loads the one the manifest names)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engines.errors import EngineError, first_line

from engines.countr.backends import CountrBackend, OrtBackend, TorchBackend, TrtBackend

MANIFEST_NAME = "manifest.json"
MODEL_TYPE = "countr"
FORMAT = 1
ONNX_NAME = "countr.onnx"
ENGINE_STEM = "countr"
# Windows / exemplar groups per call for the CPU-side runtimes (bounds memory: ~0.2 GB per window in fp32).
DEFAULT_MAX_WINDOWS = 8
DEFAULT_MAX_GROUPS = 4


def read_manifest(model_dir: Path | str) -> dict[str, Any]:
    """DIR/manifest.json of a CounTR export, or EngineError (missing dir, unreadable, another model's manifest)."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_NAME
    if not model_dir.is_dir():
        raise EngineError(f"CounTR model directory not found: {model_dir} (create it with `persense export countr`)")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineError(f"{path} not found: is {model_dir} a `persense export countr` directory?") from None
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(manifest, dict) or manifest.get("model_type") != MODEL_TYPE:
        kind = manifest.get("model_type") if isinstance(manifest, dict) else None
        raise EngineError(f"{path} describes a {kind!r} model, not CounTR: point engines.countr.model_dir elsewhere")
    if manifest.get("format") != FORMAT:
        raise EngineError(f"{path}: manifest format {manifest.get('format')!r} is not {FORMAT}; re-export the model")
    return manifest


def write_manifest(model_dir: Path, manifest: dict[str, Any]) -> Path:
    path = Path(model_dir) / MANIFEST_NAME
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def onnx_checksum(model_dir: Path, manifest: dict[str, Any]) -> str:
    """The ONNX file's sha256 as recorded in the manifest (TensorRT engines are named by it), or EngineError."""
    name = manifest.get("onnx", ONNX_NAME)
    checksum = (manifest.get("sha256") or {}).get(name)
    if not checksum:
        raise EngineError(f"{model_dir / MANIFEST_NAME} has no checksum for {name}: re-run `persense export countr`")
    return str(checksum)


def _checkpoint_path(model_dir: Path, manifest: dict[str, Any]) -> Path:
    value = manifest.get("checkpoint")
    if not value:
        raise EngineError(f"{model_dir / MANIFEST_NAME} names no checkpoint: the torch backend needs one")
    path = Path(value)
    return path if path.is_absolute() else model_dir / path


def load_backend(model_dir: Path | str, backend: str) -> CountrBackend:
    """'torch' | 'onnxruntime' | 'tensorrt' -> a CounTR backend for the export in `model_dir`."""
    from engines.countr.model import CountrSpec

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if backend == "onnxruntime":
        return OrtBackend(model_dir / manifest.get("onnx", ONNX_NAME), max_windows=DEFAULT_MAX_WINDOWS,
                          max_groups=DEFAULT_MAX_GROUPS)
    if backend == "torch":
        from engines.countr.checkpoint import load_countr

        spec = CountrSpec.from_dict(manifest.get("spec", {}))
        model = load_countr(_checkpoint_path(model_dir, manifest), spec)
        return TorchBackend(model, max_windows=DEFAULT_MAX_WINDOWS, max_groups=DEFAULT_MAX_GROUPS)
    if backend == "tensorrt":
        from engines.trt import recorded_engine

        trt_info = manifest.get("tensorrt") or {}
        path = recorded_engine(model_dir, trt_info.get("engine"), ENGINE_STEM, onnx_checksum(model_dir, manifest),
                               "persense export countr")
        return TrtBackend(path, max_windows=int(trt_info["max_windows"]), max_groups=int(trt_info["max_groups"]))
    raise EngineError(f"unknown CounTR backend {backend!r} (torch, onnxruntime or tensorrt)")
