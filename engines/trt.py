"""A small generic TensorRT runtime: load a serialized engine, run it on named numpy (or CUDA torch) tensors.

TensorRT and torch (for device memory and the stream) are imported lazily: this module imports anywhere,
and without TensorRT or a GPU every entry point raises one EngineError line.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.errors import EngineError, first_line

log = logging.getLogger(__name__)


def import_tensorrt():
    """-> the tensorrt module, or EngineError when it is not installed."""
    try:
        import tensorrt
    except ImportError:
        raise EngineError(
            "TensorRT is not installed (pip install tensorrt, on a machine with an NVIDIA GPU)"
        ) from None
    return tensorrt


def require_cuda():
    """-> torch with a usable CUDA device, or EngineError."""
    try:
        import torch
    except ImportError:
        raise EngineError("the TensorRT runtime needs torch with CUDA for device memory") from None
    if not torch.cuda.is_available():
        raise EngineError("no CUDA GPU is available: TensorRT engines need an NVIDIA GPU")
    return torch


def gpu_name(device: int = 0) -> str:
    """The GPU's marketing name (e.g. 'NVIDIA H100 80GB HBM3'), or EngineError where there is none."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(device)
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader", f"--id={device}"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout.strip()
            if out:
                return first_line(out)
        except (OSError, subprocess.SubprocessError):
            pass
    raise EngineError("no NVIDIA GPU found: TensorRT engines need one")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


ONNX_TAG = 12  # hex digits of the ONNX checksum in an engine's name


def onnx_digest(checksums: Sequence[str]) -> str:
    """The ONNX export an engine comes from, as the first 12 hex digits of its sha256; with external data
    (several files) the sha256 of their checksums joined, so that new weights beside an unchanged graph count."""
    checksums = [c.lower() for c in checksums if c]
    if not checksums:
        raise EngineError("no ONNX checksum to name the TensorRT engine by (re-run the export)")
    text = checksums[0] if len(checksums) == 1 else hashlib.sha256(" ".join(checksums).encode()).hexdigest()
    return text[:ONNX_TAG]


def engine_prefix(stem: str, gpu: str, trt_version: str) -> str:
    """The part of an engine's name that ties it to a GPU and TensorRT version, e.g. 'decoder.nvidia-h100.trt10.3.0.'"""
    return f"{stem}.{_slug(gpu)}.trt{_slug(trt_version)}."


def engine_file_name(
    stem: str, profile_desc: str, *, onnx_sha256: str, gpu: str | None = None, trt_version: str | None = None
) -> str:
    """Name an engine by model stem, GPU, TensorRT version, profile and the ONNX export it was built from, so that an
    engine built for other hardware, software or weights is never picked up:
    e.g. 'decoder.nvidia-h100-80gb-hbm3.trt10.3.0.n1-64-512.fp16.onnx-0123456789ab.engine'.

    `onnx_sha256`: the ONNX file's checksum (or `onnx_digest` of several); its first 12 hex digits are used.
    `gpu` and `trt_version` default to this machine's (EngineError without a GPU or TensorRT).
    """
    gpu = gpu if gpu is not None else gpu_name()
    trt_version = trt_version if trt_version is not None else import_tensorrt().__version__
    tag = _slug(onnx_sha256)[:ONNX_TAG]
    return f"{engine_prefix(stem, gpu, trt_version)}{_slug(profile_desc)}.onnx-{tag}.engine"


def recorded_engine(
    model_dir: Path,
    recorded: str | None,
    stem: str,
    onnx_sha256: str,
    export_command: str,
    *,
    gpu: str | None = None,
    trt_version: str | None = None,
) -> Path:
    """The engine file a model directory's manifest names, checked against this machine and the ONNX export.

    Args:
        recorded: the engine's file name from the manifest (None or '' when no engine was built).
        onnx_sha256: the manifest's checksum of the ONNX export (or `onnx_digest` of several files).
        export_command: e.g. 'persense export sam', for the hint in the error.
        gpu, trt_version: default to this machine's.

    Raises:
        EngineError: none recorded, recorded for another GPU / TensorRT version / ONNX export, or missing (one line).
    """
    rebuild = f"rebuild it on this machine with `{export_command} --tensorrt`"
    if not recorded:
        raise EngineError(f"no TensorRT engine for the {stem} recorded in {model_dir / 'manifest.json'}: "
                          f"build one with `{export_command} --tensorrt`")
    gpu = gpu if gpu is not None else gpu_name()
    trt_version = trt_version if trt_version is not None else import_tensorrt().__version__
    if Path(recorded).name != recorded:
        raise EngineError(f"{model_dir / 'manifest.json'} names the {stem} engine {recorded!r}, not a file name "
                          "inside the model directory; re-run the export")
    if not recorded.startswith(engine_prefix(stem, gpu, trt_version)):
        raise EngineError(f"the TensorRT {stem} engine in {model_dir} ({recorded}) was built for another GPU or "
                          f"TensorRT version (here: {gpu}, TensorRT {trt_version}); {rebuild}")
    if not recorded.endswith(f".onnx-{_slug(onnx_sha256)[:ONNX_TAG]}.engine"):
        raise EngineError(f"the TensorRT {stem} engine in {model_dir} ({recorded}) was built from another ONNX "
                          f"export than the one there now; {rebuild}")
    path = Path(model_dir) / recorded
    if not path.is_file():
        raise EngineError(f"the TensorRT {stem} engine {recorded} named in {model_dir / 'manifest.json'} is "
                          f"missing; {rebuild}")
    return path


def _torch_dtype(torch, trt, dtype):
    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dtype not in table:
        raise EngineError(f"unsupported TensorRT tensor type {dtype}")
    return table[dtype]


class TrtRunner:
    """One deserialized engine and its execution context (the named-tensor API of TensorRT 10 and 11).

    Not thread-safe: one `run` at a time. Inputs may be numpy arrays (copied to the GPU) or CUDA torch tensors
    (used in place); `run` returns numpy arrays, `run_device` CUDA torch tensors.
    """

    def __init__(self, engine_path: Path | str, device: int = 0) -> None:
        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise EngineError(f"TensorRT engine not found: {engine_path}")
        trt = import_tensorrt()
        torch = require_cuda()
        self._trt, self._torch = trt, torch
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        try:
            engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        except Exception as exc:
            engine = None
            log.debug("deserialize failed: %s", exc)
        if engine is None:
            raise EngineError(
                f"cannot load TensorRT engine {engine_path.name}: built for another GPU or TensorRT version, "
                "or corrupt; rebuild it with `persense export ... --tensorrt`"
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
            else:
                self.outputs.append(name)
        self.path = engine_path

    def run_device(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """name -> np.ndarray | torch CUDA tensor  ->  name -> torch CUDA tensor (synchronised)."""
        torch, trt = self._torch, self._trt
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise EngineError(f"engine {self.path.name}: input(s) not given: {', '.join(missing)}")
        keep_alive = []
        stream = torch.cuda.current_stream(self.device)
        for name in self.inputs:
            value = inputs[name]
            dtype = _torch_dtype(torch, trt, self.engine.get_tensor_dtype(name))
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(np.ascontiguousarray(value))
            tensor = value.to(self.device, dtype=dtype, non_blocking=True).contiguous()
            keep_alive.append(tensor)
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise EngineError(
                    f"engine {self.path.name}: input {name} of shape {tuple(tensor.shape)} is outside "
                    "the engine's optimisation profile"
                )
            self.context.set_tensor_address(name, tensor.data_ptr())
        results = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = _torch_dtype(torch, trt, self.engine.get_tensor_dtype(name))
            out = torch.empty(shape, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, out.data_ptr())
            results[name] = out
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EngineError(f"engine {self.path.name}: execution failed")
        stream.synchronize()
        return results

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """name -> np.ndarray  ->  name -> np.ndarray (float outputs as float32)."""
        out = self.run_device(inputs)
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in out.items()}
