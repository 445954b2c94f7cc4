"""`persense export countr` and the CounTR backends: the ONNX export must compute what the torch model computes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.countr import build_countr_dmg
from engines.countr.engine import CountrDMG
from engines.countr.manifest import load_backend, read_manifest
from engines.countr.model import TINY_SPEC, CounTR
from export.countr import _sha256, build_countr_engine, export_countr
from streamer.cli import export as export_cli_module
from streamer.config import CountrEngineConfig, load_config
from streamer.errors import EngineError, UserError

ROOT = Path(__file__).resolve().parents[1]
KEY_LIST = Path(__file__).parent / "data" / "countr-state-dict.tsv"


def export_cli(*argv: str) -> int:
    """`persense export countr ARGS` through the CLI's own subcommand wiring."""
    parser = argparse.ArgumentParser()
    export_cli_module.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "countr", *argv])
    return args.func(args)


def reference_checkpoint(path: Path, seed: int = 0) -> Path:
    """A random FSC-147-shaped checkpoint built from the reference key list, as the training script saves it."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for line in KEY_LIST.read_text().splitlines()[1:]:
        key, shape, _ = line.split("\t")
        state[key] = torch.randn([int(d) for d in shape.split("x")], generator=gen) * 0.02
    state["decoder_pred.weight"] = torch.zeros(768, 512)  # MAE leftover
    torch.save({"model": state, "epoch": 1, "args": argparse.Namespace(model="mae_vit_base_patch16")}, path)
    return path


def frame_and_boxes(frame_hw: tuple[int, int], boxes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = frame_hw
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    xy = rng.uniform(0, [w - 24, h - 24], (boxes, 2))
    return image, np.concatenate([xy, xy + 20], axis=1).astype(np.float32)


def relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(reference - other).max() / np.abs(reference).max())


# -- tiny model: fast checks of the export plumbing --------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = CounTR(TINY_SPEC).eval()
    out = tmp_path_factory.mktemp("countr-tiny")
    checkpoint = out / "tiny.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    export_countr(model, out, checkpoint=checkpoint)
    return out


def test_manifest_describes_the_export(tiny_dir):
    manifest = read_manifest(tiny_dir)
    assert manifest["onnx"] == "countr.onnx" and manifest["spec"]["embed_dim"] == TINY_SPEC.embed_dim
    assert manifest["inputs"]["exemplars"] == ["G", "S", 3, 64, 64]
    assert manifest["preprocess"]["density_scale"] == 60 and manifest["preprocess"]["window_stride"] == 128
    assert manifest["sha256"]["countr.onnx"] == _sha256(tiny_dir / "countr.onnx")
    assert Path(manifest["checkpoint"]).is_file()


def test_tiny_onnx_and_torch_backends_agree_through_the_config(tiny_dir):
    image, boxes = frame_and_boxes((96, 160), 4)
    outs = {}
    for backend in ("torch", "onnxruntime"):
        dmg = build_countr_dmg(tiny_dir, backend)
        outs[backend] = (dmg.model_density(image, boxes).density, dmg.density(image, None, boxes))
    assert relative_error(outs["torch"][0], outs["onnxruntime"][0]) < 1e-4
    assert outs["torch"][1].count == pytest.approx(outs["onnxruntime"][1].count, rel=1e-3, abs=1e-3)


def test_bad_model_directories_are_one_line_errors(tmp_path, tiny_dir):
    with pytest.raises(EngineError, match="not found"):
        load_backend(tmp_path / "absent", "onnxruntime")
    with pytest.raises(EngineError, match="manifest.json not found"):
        load_backend(tmp_path, "onnxruntime")
    (tmp_path / "manifest.json").write_text(json.dumps({"model_type": "sam", "format": 1}))
    with pytest.raises(EngineError, match="'sam' model, not CounTR"):
        load_backend(tmp_path, "onnxruntime")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(EngineError, match="cannot read"):
        load_backend(tmp_path, "onnxruntime")
    with pytest.raises(EngineError, match="no TensorRT engine"):
        load_backend(tiny_dir, "tensorrt")


@pytest.fixture
def fake_machine(monkeypatch):
    """This machine as TensorRT 10.3.0 on an H100, and a TrtBackend that records the engine it is given."""
    import types

    import engines.countr.manifest as manifest_module
    import engines.trt as trt_module

    monkeypatch.setattr(trt_module, "gpu_name", lambda device=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(trt_module, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(manifest_module, "TrtBackend", lambda path, **limits: (Path(path), limits))
    return {"gpu": "NVIDIA H100 80GB HBM3", "trt_version": "10.3.0"}


def _record_fake_engines(model_dir: Path, machine: dict) -> dict[bool, str]:
    """fp32 and fp16 engine files named as export.tensorrt names them; -> {fp16: name}."""
    from engines.countr.manifest import onnx_checksum
    from engines.trt import engine_file_name

    checksum = onnx_checksum(model_dir, read_manifest(model_dir))
    names = {}
    for fp16 in (False, True):
        names[fp16] = engine_file_name("countr", "windows0-1-2-8." + ("fp16" if fp16 else "fp32"),
                                       onnx_sha256=checksum, **machine)
        (model_dir / names[fp16]).write_bytes(b"engine")
    return names


def _set_engine(model_dir: Path, name: str) -> None:
    from engines.countr.manifest import write_manifest

    manifest = read_manifest(model_dir)
    manifest["tensorrt"] = {"engine": name, "max_windows": 8, "max_groups": 2, "fp16": "fp16" in name}
    write_manifest(model_dir, manifest)


def test_tensorrt_loads_exactly_the_engine_the_manifest_names(tiny_dir, tmp_path, fake_machine):
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    names = _record_fake_engines(model_dir, fake_machine)
    for fp16 in (True, False):  # whichever the manifest names, never the last by sort order
        _set_engine(model_dir, names[fp16])
        path, limits = load_backend(model_dir, "tensorrt")
        assert path == model_dir / names[fp16] and limits == {"max_windows": 8, "max_groups": 2}
    other_gpu = names[True].replace("nvidia-h100-80gb-hbm3", "nvidia-l4")
    (model_dir / other_gpu).write_bytes(b"engine")
    _set_engine(model_dir, other_gpu)
    with pytest.raises(EngineError, match="another GPU or TensorRT version"):
        load_backend(model_dir, "tensorrt")


def test_reexport_deletes_stale_engines(tiny_dir, tmp_path, fake_machine):
    """Other weights exported into a directory with an engine: it goes (with onnxruntime's TensorRT cache), the
    manifest names none, and the old engine's name no longer matches the ONNX checksum."""
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_dir, model_dir)
    names = _record_fake_engines(model_dir, fake_machine)
    _set_engine(model_dir, names[True])
    (model_dir / "ort-trt-cache").mkdir()
    (model_dir / "ort-trt-cache" / "TensorrtExecutionProvider_x.engine").write_bytes(b"engine")
    torch.manual_seed(1)
    export_countr(CounTR(TINY_SPEC).eval(), model_dir, checkpoint=None)
    assert not list(model_dir.glob("*.engine")) and not (model_dir / "ort-trt-cache").exists()
    assert "tensorrt" not in read_manifest(model_dir)
    with pytest.raises(EngineError, match="no TensorRT engine"):
        load_backend(model_dir, "tensorrt")
    (model_dir / names[True]).write_bytes(b"engine")
    _set_engine(model_dir, names[True])  # a manifest edited by hand to name the old engine
    with pytest.raises(EngineError, match="another ONNX export"):
        load_backend(model_dir, "tensorrt")


def test_cli_rejects_bad_arguments_and_checkpoints_in_one_line(tmp_path):
    with pytest.raises(UserError, match="--fp16 applies to the TensorRT engine"):
        export_cli("--checkpoint", "x.pth", "--out", str(tmp_path), "--fp16")
    with pytest.raises(EngineError, match="checkpoint not found"):
        export_cli("--checkpoint", str(tmp_path / "absent.pth"), "--out", str(tmp_path / "out"))
    partial = tmp_path / "partial.pth"
    torch.save({"model": {"pos_embed": torch.zeros(1, 576, 768)}}, partial)
    with pytest.raises(EngineError, match=r"missing key\(s\) decoder_pos_embed, shot_token, .* more$"):
        export_cli("--checkpoint", str(partial), "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_paper_configuration_file_loads():
    config = load_config(ROOT / "configs" / "sam-vit-b-countr.yaml")
    assert config.engines.segmenter == "sam" and config.engines.dmg == "countr"
    assert config.engines.countr is not None and config.engines.countr.backend == "onnxruntime"
    assert config.pipeline.feedback_exemplars == 4


# -- ViT-B: the real architecture ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vitb_backends(tmp_path_factory):
    """Export a random ViT-B checkpoint once through the CLI, then load it on torch and onnxruntime."""
    tmp = tmp_path_factory.mktemp("countr-vitb")
    checkpoint = reference_checkpoint(tmp / "FSC147.pth")
    out = tmp / "model"
    assert export_cli("--checkpoint", str(checkpoint), "--out", str(out)) == 0
    return {name: load_backend(out, name) for name in ("torch", "onnxruntime")}


@pytest.mark.slow
@pytest.mark.parametrize(
    "frame_hw, boxes, windows, groups",
    # Four boxes (two exemplar groups) on the one-window frame, where the extra decoder pass is cheapest.
    [((96, 96), 4, 1, 2), ((96, 160), 1, 3, 1), ((64, 192), 3, 7, 1)],
)
def test_vitb_onnx_matches_torch(vitb_backends, frame_hw, boxes, windows, groups):
    image, box_array = frame_and_boxes(frame_hw, boxes)
    results = {name: CountrDMG(b).model_density(image, box_array) for name, b in vitb_backends.items()}
    ref, onnx_out = results["torch"], results["onnxruntime"]
    assert ref.layout.num_windows == windows and ref.groups == groups
    assert relative_error(ref.density, onnx_out.density) < 1e-4


# -- GPU --------------------------------------------------------------------------------------------------------
def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt(), reason="needs TensorRT and a CUDA GPU")
@pytest.mark.parametrize("fp16, tolerance", [(False, 1e-3), (True, 3e-2)])
def test_tensorrt_engine_matches_torch(tiny_dir, fp16, tolerance):
    build_countr_engine(tiny_dir, fp16=fp16, max_windows=8)
    image, boxes = frame_and_boxes((96, 160), 4)
    ref = CountrDMG(load_backend(tiny_dir, "torch")).model_density(image, boxes).density
    trt = CountrDMG(load_backend(tiny_dir, "tensorrt")).model_density(image, boxes).density
    assert relative_error(ref, trt) < tolerance


@pytest.mark.skipif(_has_tensorrt(), reason="checks the error where TensorRT or a GPU is missing")
def test_tensorrt_build_without_tensorrt_or_gpu_is_one_line_error(tiny_dir):
    with pytest.raises(EngineError) as err:
        build_countr_engine(tiny_dir)
    assert "\n" not in str(err.value)
