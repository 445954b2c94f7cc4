"""`--fp16`'s mixed-precision graph (export.precision): what a strongly typed TensorRT build compiles.

TensorRT 11 takes every tensor's type from the graph, so the FP16 engine is exactly as good as this graph. Its
types are checked node by node, and it is run in ONNX Runtime on the CPU against the FP32 export it came from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engines.countr.model import TINY_SPEC, CounTR
from export.countr import FP32_OP_TYPES as COUNTR_FP32_OPS
from export.countr import export_onnx as export_countr_onnx
from export.precision import convert_to_fp16
from export.tensorrt import DEFAULT_FP32_OP_TYPES
from sam_testing import export_random, tiny_dir  # noqa: F401
from streamer.errors import EngineError

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
HEAVY_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


def _elem_types(path: Path) -> dict[str, int]:
    """Tensor name -> ONNX element type, from shape inference over the model as written."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    types = {t.name: t.data_type for t in model.graph.initializer}
    for info in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        types[info.name] = info.type.tensor_type.elem_type
    return types


def _check_types(fp32_path: Path, fp16_path: Path, kept_ops) -> None:
    source, converted = onnx.load(str(fp32_path), load_external_data=False), onnx.load(str(fp16_path),
                                                                                        load_external_data=False)
    onnx.checker.check_model(str(fp16_path))
    io = lambda m: [(v.name, v.type.tensor_type.elem_type) for v in [*m.graph.input, *m.graph.output]]  # noqa: E731
    assert io(converted) == io(source)  # runtimes feed both builds the same arrays
    types = _elem_types(fp16_path)
    heavy = [n for n in converted.graph.node if n.op_type in HEAVY_OPS]
    assert heavy and all(types[n.input[0]] == FLOAT16 and types[n.input[1]] == FLOAT16 for n in heavy)
    kept = [n for n in converted.graph.node if n.op_type in kept_ops]
    assert kept and all(types[n.input[0]] == FLOAT for n in kept)


def _run(path: Path, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def _decoder_feeds(embed_dim: int, prompts: int = 6) -> dict:
    rng = np.random.default_rng(0)
    return {
        "image_embeddings": rng.normal(size=(1, embed_dim, 64, 64)).astype(np.float32),
        "point_coords": rng.uniform(0, 1024, (prompts, 2, 2)).astype(np.float32),
        "point_labels": np.tile(np.array([[1, -1]], np.float32), (prompts, 1)),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
        "attention_bias": rng.normal(0, 0.5, (1, 64, 64)).astype(np.float32),
        "target_embedding": np.zeros((1, embed_dim), np.float32),
    }


def check_sam_decoder_fp16(model_dir: Path, scratch: Path, prompts: int = 6) -> None:
    """The FP16 decoder of an export: typed as planned, and its masks and scores those of the FP32 decoder."""
    fp16 = convert_to_fp16(model_dir / "decoder.onnx", scratch / "decoder.onnx", DEFAULT_FP32_OP_TYPES)
    _check_types(model_dir / "decoder.onnx", fp16, DEFAULT_FP32_OP_TYPES)
    embed_dim = onnx.load(str(model_dir / "decoder.onnx")).graph.input[0].type.tensor_type.shape.dim[1].dim_value
    feeds = _decoder_feeds(embed_dim, prompts)
    reference, converted = _run(model_dir / "decoder.onnx", feeds), _run(fp16, feeds)
    masks, scores = reference[0], reference[1]
    assert converted[0].dtype == np.float32 and converted[0].shape == masks.shape
    assert np.isfinite(converted[0]).all()
    confident = np.abs(masks) > 0.05 * np.abs(masks).max()
    assert ((converted[0] > 0) == (masks > 0))[confident].mean() >= 0.999
    np.testing.assert_allclose(converted[1], scores, atol=1e-2)


def check_sam_encoder_fp16(model_dir: Path, scratch: Path) -> None:
    """The FP16 encoder of an export: typed as planned, its embedding within 1% of the FP32 one's range."""
    out = convert_to_fp16(model_dir / "encoder.onnx", scratch / "encoder.onnx", DEFAULT_FP32_OP_TYPES)
    _check_types(model_dir / "encoder.onnx", out, DEFAULT_FP32_OP_TYPES)
    image = {"image": np.random.default_rng(1).normal(size=(1, 3, 1024, 1024)).astype(np.float32)}
    reference, converted = _run(model_dir / "encoder.onnx", image)[0], _run(out, image)[0]
    assert np.abs(converted - reference).max() <= 1e-2 * np.abs(reference).max()


def test_sam_decoder_fp16_graph_is_typed_as_planned_and_agrees(tiny_dir, tmp_path):  # noqa: F811
    check_sam_decoder_fp16(tiny_dir, tmp_path)


def test_external_data_encoder_converts_and_agrees(tmp_path):
    """ViT-H's encoder is stored as external data (over protobuf's 2 GB): the converter must read it and write
    its FP16 weights the same way."""
    from export.sam import load_model
    from export.sam_onnx import export_onnx

    model_dir = tmp_path / "m"
    sam, info = load_model("tiny", None, 5, model_dir)
    export_onnx(sam, "tiny", model_dir, checkpoint_info=info, external_data=True)
    assert (model_dir / "encoder.onnx.data").is_file()
    check_sam_encoder_fp16(model_dir, tmp_path / "fp16")
    data = tmp_path / "fp16" / "encoder.onnx.data"
    assert data.is_file() and data.stat().st_size < 0.6 * (model_dir / "encoder.onnx.data").stat().st_size


def test_countr_fp16_graph_agrees(tmp_path):
    torch.manual_seed(0)
    model = CounTR(TINY_SPEC).eval()
    source = tmp_path / "countr.onnx"
    export_countr_onnx(model, source)
    out = convert_to_fp16(source, tmp_path / "fp16" / "countr.onnx", COUNTR_FP32_OPS)
    _check_types(source, out, COUNTR_FP32_OPS)
    rng = np.random.default_rng(0)
    size, ex = TINY_SPEC.img_size, TINY_SPEC.exemplar_size
    feeds = {"windows": rng.uniform(0, 1, (2, 3, size, size)).astype(np.float32),
             "exemplars": rng.uniform(0, 1, (1, 3, 3, ex, ex)).astype(np.float32)}
    reference, converted = _run(source, feeds)[0], _run(out, feeds)[0]
    assert converted.shape == reference.shape and np.isfinite(converted).all()
    assert np.abs(converted - reference).max() <= 2e-2 * np.abs(reference).max()


def test_missing_converter_is_one_line(tiny_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)
    with pytest.raises(EngineError, match="onnxconverter-common") as info:
        convert_to_fp16(tiny_dir / "decoder.onnx", tmp_path / "d.onnx", DEFAULT_FP32_OP_TYPES)
    assert "\n" not in str(info.value)
