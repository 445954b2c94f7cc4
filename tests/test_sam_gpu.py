"""GPU paths: ONNX Runtime's CUDA provider, TensorRT engine build and runtime. Marked `gpu`; they skip cleanly where
there is no NVIDIA GPU (or no TensorRT). The engine-naming and no-TensorRT checks run everywhere."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engines.sam import load_sam
from engines.trt import engine_file_name, onnx_digest, recorded_engine
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


SHA_A, SHA_B = "a" * 64, "b" * 64


def test_engine_names_carry_gpu_version_profile_and_onnx():
    desc = profile_description({"point_coords": ((1, 2, 2), (64, 2, 2), (512, 2, 2)), "x": ((1, 3),) * 3}, True)
    assert desc == "point_coords0-1-64-512.fp16"
    a = engine_file_name("decoder", desc, onnx_sha256=SHA_A, gpu="NVIDIA H100 80GB HBM3", trt_version="10.3.0")
    b = engine_file_name("decoder", desc, onnx_sha256=SHA_A, gpu="NVIDIA GeForce RTX 4090", trt_version="10.3.0")
    c = engine_file_name("decoder", desc, onnx_sha256=SHA_A, gpu="NVIDIA H100 80GB HBM3", trt_version="10.4.0")
    d = engine_file_name("decoder", desc, onnx_sha256=SHA_B, gpu="NVIDIA H100 80GB HBM3", trt_version="10.3.0")
    assert a == "decoder.nvidia-h100-80gb-hbm3.trt10.3.0.point-coords0-1-64-512.fp16.onnx-aaaaaaaaaaaa.engine"
    assert len({a, b, c, d}) == 4
    assert profile_description({}, False) == "static.fp32"


def test_onnx_digest_covers_external_weights():
    assert onnx_digest([SHA_A]) == "a" * 12
    both = onnx_digest([SHA_A, SHA_B])
    assert len(both) == 12 and both != onnx_digest([SHA_A, "c" * 64]) and both != onnx_digest([SHA_A])
    with pytest.raises(EngineError, match="no ONNX checksum"):
        onnx_digest([])


def test_recorded_engine_is_checked_against_machine_and_export(tmp_path):
    """engines.trt.recorded_engine without TensorRT: this machine's GPU and version are given explicitly."""
    here = {"gpu": "NVIDIA H100 80GB HBM3", "trt_version": "10.3.0"}
    good = engine_file_name("decoder", "static.fp16", onnx_sha256=SHA_A, **here)
    other_gpu = engine_file_name("decoder", "static.fp16", onnx_sha256=SHA_A, gpu="NVIDIA L4", trt_version="10.3.0")
    other_onnx = engine_file_name("decoder", "static.fp16", onnx_sha256=SHA_B, **here)
    for name in (good, other_gpu, other_onnx):
        (tmp_path / name).write_bytes(b"engine")

    def pick(recorded):
        return recorded_engine(tmp_path, recorded, "decoder", SHA_A, "persense export sam", **here)

    assert pick(good) == tmp_path / good
    cases = [(None, "no TensorRT engine for the decoder recorded"), (other_gpu, "another GPU or TensorRT version"),
             (other_onnx, "another ONNX export"), ("../" + good, "not a file name")]
    for recorded, message in cases:
        with pytest.raises(EngineError, match=message) as info:
            pick(recorded)
        assert "\n" not in str(info.value)
    (tmp_path / good).unlink()
    with pytest.raises(EngineError, match="is missing"):
        pick(good)


@pytest.fixture
def fake_machine(monkeypatch):
    """This machine as TensorRT 10.3.0 on an H100, for the engine selection logic (nothing is deserialised)."""
    import types

    import engines.trt as trt_module

    monkeypatch.setattr(trt_module, "gpu_name", lambda device=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(trt_module, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.3.0"))
    return {"gpu": "NVIDIA H100 80GB HBM3", "trt_version": "10.3.0"}


def _fake_engines(model_dir, manifest, machine):
    """fp32 and fp16 engine files of both roles, named as export.tensorrt names them -> {(role, fp16): name}."""
    names = {}
    for role in ("encoder", "decoder"):
        for fp16 in (False, True):
            name = engine_file_name(role, profile_description({}, fp16), onnx_sha256=manifest.onnx_sha256(
                f"{role}.onnx"), **machine)
            (model_dir / name).write_bytes(b"engine")
            names[role, fp16] = name
    return names


def test_sam_loads_exactly_the_engines_the_manifest_names(tiny_dir, tmp_path, fake_machine):
    from engines.sam.backends import find_engine
    from engines.sam.manifest import read_manifest

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    manifest = read_manifest(model_dir)
    with pytest.raises(EngineError, match="no TensorRT engine for the encoder recorded"):
        find_engine(model_dir, manifest, "encoder")
    names = _fake_engines(model_dir, manifest, fake_machine)
    for fp16 in (True, False):  # whichever the manifest names, never the last by sort order
        manifest.engines = {role: names[role, fp16] for role in ("encoder", "decoder")}
        for role in ("encoder", "decoder"):
            assert find_engine(model_dir, manifest, role) == model_dir / names[role, fp16]
    # The encoder's engine recorded as the decoder's: built from another ONNX file.
    manifest.engines["decoder"] = names["encoder", True].replace("encoder.", "decoder.", 1)
    (model_dir / manifest.engines["decoder"]).write_bytes(b"engine")
    with pytest.raises(EngineError, match="another ONNX export"):
        find_engine(model_dir, manifest, "decoder")


def test_reexport_deletes_stale_engines(tiny_dir, tmp_path, fake_machine):
    """Re-exporting other weights into a directory with engines: the engines (and onnxruntime's TensorRT cache)
    go, the new manifest names none, and an engine named for the old export would be refused."""
    from engines.sam.backends import find_engine
    from engines.sam.manifest import read_manifest
    from sam_testing import export_random

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    old = read_manifest(model_dir)
    names = _fake_engines(model_dir, old, fake_machine)
    old.engines = {role: names[role, True] for role in ("encoder", "decoder")}
    old.write(model_dir)
    (model_dir / "ort-trt-cache").mkdir()
    (model_dir / "ort-trt-cache" / "TensorrtExecutionProvider_x.engine").write_bytes(b"engine")
    assert find_engine(model_dir, read_manifest(model_dir), "decoder").is_file()

    export_random("tiny", model_dir, seed=99)
    new = read_manifest(model_dir, verify=True)
    assert not list(model_dir.glob("*.engine")) and not (model_dir / "ort-trt-cache").exists()
    assert new.engines == {} and new.onnx_sha256("decoder.onnx") != old.onnx_sha256("decoder.onnx")
    with pytest.raises(EngineError, match="no TensorRT engine for the decoder recorded"):
        find_engine(model_dir, new, "decoder")
    new.engines = dict(old.engines)  # a manifest edited by hand to name the old engines
    (model_dir / old.engines["decoder"]).write_bytes(b"engine")
    with pytest.raises(EngineError, match="another ONNX export"):
        find_engine(model_dir, new, "decoder")


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
    assert model.backend.device == "cuda" and model.device == "cuda"
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
    points = np.random.default_rng(2).uniform([0, 0], [639, 479], (40, 2)).astype(np.float32)
    full = model.decode_points(emb, points, guidance, best_only=False)  # 40 > max_batch: split
    assert full.logits.shape == (40, 3, 256, 256) and np.isfinite(full.logits).all()
    # The pipeline's best-only output, selected on the GPU: the best of the three, on the 192 x 256 valid cells.
    best = model.decode_points(emb, points, guidance)
    assert best.logits.shape == (40, 1, 192, 256)
    pick = np.argmax(full.scores, axis=1)
    np.testing.assert_allclose(best.scores[:, 0], full.scores[np.arange(40), pick], atol=1e-6)
    np.testing.assert_allclose(best.logits[:, 0], full.logits[np.arange(40), pick, :192], atol=1e-5)


@pytest.mark.gpu
@needs_tensorrt
def test_engine_for_another_gpu_is_refused(tiny_dir, tmp_path):
    from engines.sam.manifest import read_manifest
    from export.sam import build_tensorrt

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    engines = build_tensorrt(model_dir, fp16=False, opt=1, max_prompts=4, timing_cache=None)
    manifest = read_manifest(model_dir)
    for role, name in engines.items():
        stem, _, rest = name.split(".", 2)
        other = f"{stem}.some-other-gpu.{rest}"
        (model_dir / name).rename(model_dir / other)
        manifest.engines[role] = other
    manifest.write(model_dir)
    with pytest.raises(EngineError, match="another GPU"):
        load_sam(model_dir, "tensorrt")


@pytest.mark.gpu
@needs_tensorrt
def test_reexport_then_rebuild_uses_the_new_weights(tiny_dir, tmp_path):
    """Other weights exported into a directory with engines: no stale engine loads, and the rebuilt ones are new."""
    from export.sam import build_tensorrt
    from sam_testing import export_random

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    old = build_tensorrt(model_dir, fp16=False, opt=1, max_prompts=4, timing_cache=None)
    export_random("tiny", model_dir, seed=99)
    with pytest.raises(EngineError, match="no TensorRT engine"):
        load_sam(model_dir, "tensorrt")
    new = build_tensorrt(model_dir, fp16=False, opt=1, max_prompts=4, timing_cache=None)
    assert set(new.values()).isdisjoint(old.values())
    image, point = textured_image(96, 128), np.array([[40.0, 30.0]], np.float32)
    trt_scores = load_sam(model_dir, "tensorrt", max_batch=4).predict(image, point)[1]
    ref_scores = load_sam(model_dir, "torch").predict(image, point)[1]
    np.testing.assert_allclose(trt_scores, ref_scores, atol=1e-3)


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
