"""GPU paths: ONNX Runtime's CUDA provider, TensorRT engine build and runtime. Marked `gpu`; they skip cleanly where
there is no NVIDIA GPU (or no TensorRT). The engine-naming and no-TensorRT checks run everywhere."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engines.sam import load_sam
from engines.trt import engine_file_name
from export.tensorrt import profile_description
from sam_testing import agreement, reference_predictor, textured_image, tiny_dir  # noqa: F401
from streamer.errors import EngineError


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401

        return _cuda()
    except ImportError:
        return False


needs_cuda = pytest.mark.skipif(not _cuda(), reason="no CUDA GPU")
needs_tensorrt = pytest.mark.skipif(not _tensorrt(), reason="no TensorRT with a CUDA GPU")


def test_engine_names_carry_gpu_version_and_profile():
    desc = profile_description({"point_coords": ((1, 2, 2), (64, 2, 2), (512, 2, 2)), "x": ((1, 3),) * 3}, True)
    assert desc == "point_coords0-1-64-512.fp16"
    a = engine_file_name("decoder", desc, gpu="NVIDIA H100 80GB HBM3", trt_version="10.3.0")
    b = engine_file_name("decoder", desc, gpu="NVIDIA GeForce RTX 4090", trt_version="10.3.0")
    c = engine_file_name("decoder", desc, gpu="NVIDIA H100 80GB HBM3", trt_version="10.4.0")
    assert a == "decoder.nvidia-h100-80gb-hbm3.trt10.3.0.point-coords0-1-64-512.fp16.engine"
    assert len({a, b, c}) == 3
    assert profile_description({}, False) == "static.fp32"


@pytest.mark.skipif(_tensorrt(), reason="TensorRT and a GPU are present")
def test_build_engine_without_tensorrt_is_one_clear_line(tiny_dir, tmp_path):
    from export.tensorrt import build_engine

    with pytest.raises(EngineError) as info:
        build_engine(tiny_dir / "decoder.onnx", tmp_path, "decoder", {}, fp16=True)
    assert "\n" not in str(info.value) and ("TensorRT" in str(info.value) or "GPU" in str(info.value))


def _check_parity(model, model_dir, frame_hw=(480, 640), min_agreement=0.999, score_tol=1e-3):
    h, w = frame_hw
    image = textured_image(h, w, seed=1)
    points = np.random.default_rng(0).uniform([0, 0], [w - 1, h - 1], (5, 2)).astype(np.float32)
    masks, scores, _ = model.predict(image, points)
    predictor = reference_predictor(model_dir, "tiny")
    predictor.set_image(image)
    for i, p in enumerate(points):
        ref, ref_scores, _ = predictor.predict(p[None], np.array([1]), multimask_output=True, return_logits=True)
        ref = ref.cpu().numpy() if hasattr(ref, "cpu") else ref
        assert agreement(ref, masks[i]) >= min_agreement
        np.testing.assert_allclose(scores[i], ref_scores, atol=score_tol)


@pytest.mark.gpu
@needs_cuda
def test_onnxruntime_cuda_provider(tiny_dir):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    model = load_sam(tiny_dir, "onnxruntime", prefer_gpu=True)
    assert model.backend.device == "cuda"
    _check_parity(model, tiny_dir)


@pytest.mark.gpu
@needs_tensorrt
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_build_and_parity(tiny_dir, tmp_path, fp16):
    from export.sam import build_tensorrt

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    engines = build_tensorrt(model_dir, fp16=fp16, opt=8, max_prompts=32, timing_cache=None)
    assert (model_dir / engines["decoder"]).is_file() and (model_dir / "trt-timing.cache").is_file()
    model = load_sam(model_dir, "tensorrt", max_batch=32)
    # FP16 kernels (with LayerNorm / softmax in FP32) drift a little from the FP32 reference.
    _check_parity(model, model_dir, min_agreement=0.99 if fp16 else 0.999, score_tol=2e-2 if fp16 else 1e-3)
    # Guided decoding runs through the same engine.
    from engines.interfaces import PromptGuidance

    emb = model.encode(textured_image(480, 640))
    vh, vw = emb.valid_hw
    guidance = PromptGuidance(np.ones(model.embed_dim, np.float32) / 8, np.zeros((vh, vw), np.float32))
    out = model.decode_points(emb, np.array([[10.0, 10.0]] * 40, np.float32), guidance)  # 40 > max_batch: split
    assert out.logits.shape == (40, 3, 256, 256) and np.isfinite(out.logits).all()


@pytest.mark.gpu
@needs_tensorrt
def test_engine_for_another_gpu_is_refused(tiny_dir, tmp_path):
    from export.sam import build_tensorrt

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    engines = build_tensorrt(model_dir, fp16=False, opt=1, max_prompts=4, timing_cache=None)
    for role, name in engines.items():
        other = name.split(".", 2)
        (model_dir / name).rename(model_dir / f"{other[0]}.some-other-gpu.{other[2]}")
    with pytest.raises(EngineError, match="other GPUs"):
        load_sam(model_dir, "tensorrt")


@pytest.mark.gpu
@needs_tensorrt
def test_trt_runner_generic(tmp_path):
    """TrtRunner on a small dynamic-batch model exported here: y = 2 * x + 1."""
    import torch

    from engines.trt import TrtRunner
    from export.tensorrt import build_engine

    class Affine(torch.nn.Module):
        def forward(self, x):
            return 2 * x + 1

    onnx_path = tmp_path / "affine.onnx"
    torch.onnx.export(Affine(), (torch.zeros(2, 3),), str(onnx_path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    engine = build_engine(onnx_path, tmp_path, "affine", {"x": ((1, 3), (4, 3), (16, 3))}, fp16=False)
    runner = TrtRunner(engine)
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_allclose(runner.run({"x": x})["y"], 2 * x + 1)
    with pytest.raises(EngineError, match="profile"):
        runner.run({"x": np.zeros((17, 3), np.float32)})
