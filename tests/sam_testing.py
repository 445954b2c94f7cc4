"""Shared helpers and fixtures for the SAM engine tests (imported by tests/test_sam_*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY_SEED = 7


def export_random(model_type: str, out_dir: Path, seed: int = TINY_SEED) -> Path:
    """Export `model_type` with random weights through the exporter's Python API; the weights are saved as
    out_dir/checkpoint.pth (a real state dict, as an official checkpoint)."""
    from export.sam import load_model
    from export.sam_onnx import export_onnx

    sam, info = load_model(model_type, None, seed, out_dir)
    export_onnx(sam, model_type, out_dir, checkpoint_info=info)
    return out_dir


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return export_random("tiny", tmp_path_factory.mktemp("sam-tiny"))


def textured_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8[H, W, 3]: smooth colour blobs plus noise, so resizing and encoding see real structure."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 40, 2), max(w // 40, 2), 3)).astype(np.float32)
    import cv2

    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    big += rng.normal(0, 12, big.shape)
    return np.clip(big, 0, 255).astype(np.uint8)


def reference_predictor(model_dir: Path, model_type: str):
    """segment_anything.SamPredictor on the same weights as the exported model."""
    import torch
    from segment_anything import SamPredictor

    from engines.sam.spec import build_torch_sam

    sam = build_torch_sam(model_type)
    sam.load_state_dict(torch.load(model_dir / "checkpoint.pth", weights_only=True))
    return SamPredictor(sam.eval())


def agreement(ref_logits: np.ndarray, masks: np.ndarray, margin: float = 0.05) -> float:
    """Fraction of pixels where (ref > 0) == masks, among pixels whose reference logit is beyond `margin`."""
    confident = np.abs(ref_logits) > margin
    if not confident.any():
        return 1.0
    return float(((ref_logits > 0) == masks)[confident].mean())
