"""ViT-B with random weights (the real shapes: 768-wide, 12-block encoder; 256-channel embedding): export through
the CLI, then ONNX Runtime vs segment_anything.SamPredictor at a non-square frame size. About a minute on 2 cores."""

from __future__ import annotations

import pytest

from sam_testing import TINY_SEED
from streamer.cli import main
from test_sam_parity import check_against_predictor


@pytest.mark.slow
def test_vit_b_random_weights_export_and_parity(tmp_path):
    out = tmp_path / "vit_b"
    args = ["-q", "export", "sam", "--model-type", "vit_b", "--random-weights", str(TINY_SEED), "--out", str(out)]
    assert main(args) == 0
    check_against_predictor(out, "vit_b", "onnxruntime", (721, 1283), n_points=4)
