"""ONNX Runtime sessions with the best available provider, and I/O binding that keeps tensors on the GPU.

Generic: any exported model (SAM, CounTR) loads through `create_session` and runs through `OrtRunner`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from engines.errors import EngineError, first_line

log = logging.getLogger(__name__)

# Most capable first; only those the installed onnxruntime offers are used.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = frozenset(PREFERRED_PROVIDERS[:2])
# The TensorRT provider's engine cache, beside the model (exports clear it: it keeps the old weights).
ORT_TRT_CACHE = "ort-trt-cache"


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise EngineError(f"onnxruntime is not installed: {exc}") from None
    return onnxruntime


def choose_providers(prefer_gpu: bool = True, available: Sequence[str] | None = None) -> list[str]:
    """The providers to ask for, most preferred first (CPU is always last)."""
    if available is None:
        available = _import_ort().get_available_providers()
    wanted = PREFERRED_PROVIDERS if prefer_gpu else PREFERRED_PROVIDERS[-1:]
    chosen = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def create_session(
    path: Path | str,
    prefer_gpu: bool = True,
    *,
    threads: int = 0,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
):
    """Load an ONNX model into an `onnxruntime.InferenceSession`.

    Args:
        path: the .onnx file (external data files beside it are found by onnxruntime).
        prefer_gpu: use TensorRT, then CUDA, where the installed onnxruntime offers them; else CPU only.
        threads: intra-op threads (0 = onnxruntime's default, one per core).
        provider_options: per-provider options, e.g. {"TensorrtExecutionProvider": {"trt_fp16_enable": True}};
            for dynamic inputs give the TensorRT provider trt_profile_min/opt/max_shapes, or it rebuilds its
            engine whenever a shape leaves the range seen so far.

    Raises:
        EngineError: the file is missing or is not a loadable ONNX model (one line).
    """
    ort = _import_ort()
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"model file not found: {path}")
    providers = choose_providers(prefer_gpu)
    options = {name: dict(value) for name, value in (provider_options or {}).items()}
    if "TensorrtExecutionProvider" in providers:
        # Engines built by the TensorRT provider take minutes; cache them beside the model.
        trt_defaults = {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(path.parent / ORT_TRT_CACHE),
            "trt_timing_cache_enable": True,
        }
        options["TensorrtExecutionProvider"] = {**trt_defaults, **options.get("TensorrtExecutionProvider", {})}
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = int(threads)
    session_options.log_severity_level = 3
    provider_list = [(p, dict(options.get(p, {}))) for p in providers]
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options, providers=provider_list)
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise EngineError(f"cannot load ONNX model {path}: {first_line(exc)[:300]}") from None
    log.info("loaded %s with providers %s", path.name, session.get_providers())
    return session


def session_device(session) -> str:
    """'cuda' when the session's first provider runs on the GPU, else 'cpu'."""
    return "cuda" if session.get_providers()[0] in GPU_PROVIDERS else "cpu"


class OrtRunner:
    """Runs a session with I/O binding; on the GPU, named outputs can stay on the device (as OrtValue)
    and be fed back as inputs of another session without a round trip through host memory."""

    def __init__(self, session) -> None:
        self.session = session
        self.device = session_device(session)
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(
        self,
        inputs: Mapping[str, Any],
        outputs: Sequence[str] | None = None,
        keep_on_device: Sequence[str] = (),
    ) -> dict[str, Any]:
        """inputs: name -> np.ndarray or OrtValue; -> name -> np.ndarray (OrtValue for `keep_on_device` on GPU)."""
        ort = _import_ort()
        outputs = list(outputs or self.output_names)
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise EngineError(f"model input(s) not given: {', '.join(missing)}")
        if self.device == "cpu":
            arrays = {k: (v.numpy() if isinstance(v, ort.OrtValue) else v) for k, v in inputs.items()}
            try:
                values = self.session.run(outputs, arrays)
            except Exception as exc:
                raise EngineError(f"onnxruntime run failed: {first_line(exc)[:300]}") from None
            return dict(zip(outputs, values))
        binding = self.session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name, "cuda" if name in keep_on_device else "cpu")
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:
            raise EngineError(f"onnxruntime run failed: {first_line(exc)[:300]}") from None
        values = binding.get_outputs()
        result: dict[str, Any] = {}
        for name, value in zip(outputs, values):
            result[name] = value if name in keep_on_device else value.numpy()
        return result
