"""ViT-B with random weights (the real shapes: 768-wide, 12-block encoder; 256-channel embedding): export through
the CLI, then ONNX Runtime vs segment_anything.SamPredictor at a non-square frame size, and the `--fp16` graph vs the
FP32 export. About two minutes on 2 cores."""

from __future__ import annotations

import pytest

from sam_testing import TINY_SEED
from streamer.cli import main
from test_export_precision import check_sam_decoder_fp16, check_sam_encoder_fp16
from test_sam_parity import check_against_predictor


@pytest.mark.slow
def test_vit_b_random_weights_export_and_parity(tmp_path):
    out = tmp_path / "vit_b"
    args = ["-q", "export", "sam", "--model-type", "vit_b", "--random-weights", str(TINY_SEED), "--out", str(out)]
    assert main(args) == 0
    check_against_predictor(out, "vit_b", "onnxruntime", (721, 1283), n_points=4)
    # The mixed-precision graph a strongly typed TensorRT build compiles, at the real model's size.
    check_sam_encoder_fp16(out, tmp_path / "fp16")
    check_sam_decoder_fp16(out, tmp_path / "fp16", prompts=32)
