"""Runtimes for the CounTR graph: torch (reference), ONNX Runtime and TensorRT, behind one call signature.

Every backend is `backend(windows, exemplars) -> density` with
    windows   float32[B, 3, 384, 384] in [0, 1],
    exemplars float32[G, S, 3, 64, 64] in [0, 1],
    density   float32[G, B, 384, 384] (raw CounTR output: a window's count is its sum / 60),
and `max_windows` / `max_groups`: the largest B and G one call takes (callers split larger requests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from engines.errors import EngineError

log = logging.getLogger(__name__)

INPUT_NAMES = ("windows", "exemplars")
OUTPUT_NAME = "density"


class CountrBackend(Protocol):
    max_windows: int
    max_groups: int

    def __call__(self, windows: np.ndarray, exemplars: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """The torch model itself (the reference), on CUDA when available."""

    def __init__(self, model, device: str | None = None, max_windows: int = 8, max_groups: int = 8):
        import torch

        self._torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.max_windows = max_windows
        self.max_groups = max_groups

    def __call__(self, windows: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(np.ascontiguousarray(windows, np.float32)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(exemplars, np.float32)).to(self.device),
            )
        return out.float().cpu().numpy()


class OrtBackend:
    """The exported ONNX graph on ONNX Runtime (TensorRT / CUDA / CPU provider, best available)."""

    def __init__(self, onnx_path: Path | str, prefer_gpu: bool = True, max_windows: int = 8, max_groups: int = 8,
                 threads: int = 0):
        from engines.ort import OrtRunner, create_session

        self.runner = OrtRunner(create_session(onnx_path, prefer_gpu=prefer_gpu, threads=threads))
        names = set(self.runner.input_names)
        if names != set(INPUT_NAMES) or OUTPUT_NAME not in self.runner.output_names:
            raise EngineError(
                f"{onnx_path} is not a CounTR export (inputs {sorted(names)}); re-run `persense export countr`"
            )
        self.max_windows = max_windows
        self.max_groups = max_groups

    def __call__(self, windows: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
        out = self.runner.run(
            {"windows": np.ascontiguousarray(windows, np.float32), "exemplars": np.ascontiguousarray(exemplars, np.float32)},
            outputs=[OUTPUT_NAME],
        )
        return np.asarray(out[OUTPUT_NAME], np.float32)


class TrtBackend:
    """A TensorRT engine built by `persense export countr --tensorrt` (its profile bounds B and G)."""

    def __init__(self, engine_path: Path | str, max_windows: int, max_groups: int):
        from engines.trt import TrtRunner

        self.runner = TrtRunner(engine_path)
        if set(self.runner.inputs) != set(INPUT_NAMES) or OUTPUT_NAME not in self.runner.outputs:
            raise EngineError(f"{engine_path} is not a CounTR engine; re-run `persense export countr --tensorrt`")
        self.max_windows = max_windows
        self.max_groups = max_groups

    def __call__(self, windows: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
        out = self.runner.run({"windows": windows.astype(np.float32), "exemplars": exemplars.astype(np.float32)})
        return out[OUTPUT_NAME]


def run_batched(backend: CountrBackend, windows: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """All windows with all exemplar groups, in chunks the backend accepts, averaged over the groups.

    windows float32[N, 3, 384, 384], groups float32[G, S, 3, 64, 64] -> float32[N, 384, 384].
    """
    total = None
    for g0 in range(0, len(groups), backend.max_groups):
        chunk_groups = groups[g0 : g0 + backend.max_groups]
        parts = [
            backend(windows[w0 : w0 + backend.max_windows], chunk_groups).sum(axis=0)
            for w0 in range(0, len(windows), backend.max_windows)
        ]
        summed = np.concatenate(parts)
        total = summed if total is None else total + summed
    return (total / np.float32(len(groups))).astype(np.float32)
