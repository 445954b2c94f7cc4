"""`persense export sam`: files, manifest, graph interface, and one clear error line for each kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from engines.sam import load_sam
from engines.sam.manifest import read_manifest
from engines.sam.modules import DECODER_INPUTS, DECODER_OUTPUTS
from engines.sam.spec import detect_model_type, random_state_dict
from export.sam_onnx import export_onnx
from sam_testing import textured_image, tiny_dir  # noqa: F401
from streamer.cli import main
from streamer.errors import EngineError, UserError


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_cli_exports_tiny_with_random_weights(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["-q", "export", "sam", "--model-type", "tiny", "--random-weights", "3", "--out", str(out)]) == 0
    for name in ("encoder.onnx", "decoder.onnx", "manifest.json", "checkpoint.pth"):
        assert (out / name).is_file(), name
    data = json.loads((out / "manifest.json").read_text())
    assert data["model_type"] == "tiny" and data["input_size"] == 1024 and data["opset"] == 17
    assert data["pixel_mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert set(data["files"]) == {"encoder.onnx", "decoder.onnx"}
    assert all(len(v["sha256"]) == 64 for v in data["files"].values())
    assert {"torch", "onnx", "segment-anything"} <= set(data["versions"])
    assert data["checkpoint"]["random_seed"] == 3
    read_manifest(out, expect_type="tiny", verify=True)


def test_decoder_graph_is_batched_and_frame_size_free(tiny_dir):
    graph = onnx.load(str(tiny_dir / "decoder.onnx"), load_external_data=False).graph
    inputs = {i.name: i for i in graph.input}
    assert list(inputs) == list(DECODER_INPUTS)
    assert [o.name for o in graph.output] == list(DECODER_OUTPUTS)
    coords = inputs["point_coords"].type.tensor_type.shape.dim
    assert coords[0].dim_param and coords[1].dim_param, "prompt batch and point count must be dynamic"
    assert inputs["mask_input"].type.tensor_type.shape.dim[0].dim_param
    masks = {o.name: o for o in graph.output}["masks"].type.tensor_type.shape.dim
    assert masks[0].dim_param and [d.dim_value for d in masks[1:]] == [3, 256, 256]
    assert not any("orig_im_size" in name for name in inputs)


def test_external_data_export_loads(tmp_path):
    torch.manual_seed(0)
    from engines.sam.spec import build_torch_sam

    sam = build_torch_sam("tiny")
    export_onnx(sam, "tiny", tmp_path, external_data=True)
    assert (tmp_path / "encoder.onnx.data").is_file()
    assert "encoder.onnx.data" in read_manifest(tmp_path).files
    model = load_sam(tmp_path, threads=1)
    emb = model.encode(textured_image(64, 96))
    assert emb.features.shape == (64, 64, 64) and np.isfinite(emb.features).all()
    assert model.device == "cpu"  # where the stream decides whether to encode ahead


def test_detect_model_type_from_shapes():
    fake = {"image_encoder.pos_embed": torch.zeros(1, 64, 64, 1280)}
    fake.update({f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(32)})
    assert detect_model_type(fake) == "vit_h"
    fake = {"image_encoder.pos_embed": torch.zeros(1, 64, 64, 768)}
    fake.update({f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(12)})
    assert detect_model_type(fake) == "vit_b"
    assert detect_model_type({"foo": torch.zeros(1)}) is None


def test_checkpoint_of_another_type_is_one_clear_line(tmp_path, capsys):
    ckpt = tmp_path / "sam_vit_h_4b8939.pth"
    torch.save(random_state_dict("tiny", 0), ckpt)
    args = ["export", "sam", "--checkpoint", str(ckpt), "--model-type", "vit_b", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    line = _error_line(capsys)
    assert "is a tiny checkpoint" in line and "--model-type vit_b" in line
    assert not (tmp_path / "o" / "encoder.onnx").exists()


@pytest.mark.parametrize(
    "content, expected",
    [(b"not a checkpoint at all", "cannot read checkpoint"), (None, "not a Segment Anything checkpoint")],
)
def test_bad_checkpoints_are_one_clear_line(tmp_path, capsys, content, expected):
    ckpt = tmp_path / "x.pth"
    if content is None:
        torch.save({"weight": torch.zeros(3)}, ckpt)
    else:
        ckpt.write_bytes(content)
    assert main(["export", "sam", "--checkpoint", str(ckpt), "--model-type", "vit_b", "--out", str(tmp_path)]) == 2
    assert expected in _error_line(capsys)


def test_missing_checkpoint_and_bad_arguments(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["export", "sam", "--checkpoint", str(tmp_path / "nope.pth"), "--model-type", "vit_b", "--out", out]) == 2
    assert "checkpoint not found" in _error_line(capsys)
    assert main(["export", "sam", "--model-type", "vit_b", "--out", out]) == 2
    assert "--checkpoint" in _error_line(capsys)
    with pytest.raises(SystemExit):
        main(["export", "sam", "--model-type", "vit_x", "--random-weights", "0", "--out", out])
    assert "vit_b, vit_l, vit_h" in capsys.readouterr().err


def test_tensorrt_export_without_tensorrt_is_one_clear_line(tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401

        if torch.cuda.is_available():
            pytest.skip("TensorRT and a GPU are present: covered by the gpu tests")
    except ImportError:
        pass
    args = ["export", "sam", "--model-type", "tiny", "--random-weights", "0", "--out", str(tmp_path), "--tensorrt"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert "TensorRT" in line or "GPU" in line
    assert not (tmp_path / "encoder.onnx").exists(), "should fail before exporting"


def _copy_model(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_load_errors_are_engine_errors(tiny_dir, tmp_path):
    with pytest.raises(EngineError, match="not found"):
        load_sam(tmp_path / "absent")
    with pytest.raises(EngineError, match="manifest.json"):
        load_sam(tmp_path)
    with pytest.raises(EngineError, match="unknown SAM backend"):
        load_sam(tiny_dir, "tflite")
    with pytest.raises(EngineError, match="holds a tiny model"):
        read_manifest(tiny_dir, expect_type="vit_h")

    other = _copy_model(tiny_dir, tmp_path / "other-format")
    data = json.loads((other / "manifest.json").read_text())
    data["format"] = "persense.countr/1"
    (other / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineError, match="not a SAM manifest"):
        load_sam(other)
    (other / "manifest.json").write_text("{ not json")
    with pytest.raises(EngineError, match="not valid JSON"):
        load_sam(other)


def test_corrupt_model_files(tiny_dir, tmp_path):
    truncated = _copy_model(tiny_dir, tmp_path / "truncated")
    (truncated / "decoder.onnx").write_bytes((truncated / "decoder.onnx").read_bytes()[:1000])
    with pytest.raises(EngineError, match="decoder.onnx has the wrong size"):
        load_sam(truncated)

    garbage = _copy_model(tiny_dir, tmp_path / "garbage")
    size = (garbage / "encoder.onnx").stat().st_size
    (garbage / "encoder.onnx").write_bytes(b"\x07" * size)  # same size: only loading can tell
    with pytest.raises(EngineError, match="cannot load ONNX model"):
        load_sam(garbage)
    with pytest.raises(EngineError, match="fails its checksum"):
        load_sam(garbage, verify=True)
    (garbage / "encoder.onnx").unlink()
    with pytest.raises(EngineError, match="encoder.onnx is missing"):
        load_sam(garbage)


def test_torch_backend_without_checkpoint(tiny_dir, tmp_path):
    bare = _copy_model(tiny_dir, tmp_path / "bare")
    (bare / "checkpoint.pth").unlink()
    data = json.loads((bare / "manifest.json").read_text())
    data["checkpoint"] = {}
    (bare / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineError, match="needs the checkpoint"):
        load_sam(bare, "torch")


def test_tensorrt_backend_without_engines_is_one_clear_line(tiny_dir):
    with pytest.raises(EngineError) as info:
        load_sam(tiny_dir, "tensorrt")
    assert "\n" not in str(info.value)
    assert any(word in str(info.value) for word in ("TensorRT", "GPU", "engine"))


def test_bad_image_is_user_error(tiny_dir):
    model = load_sam(tiny_dir, threads=1)
    with pytest.raises(UserError, match="uint8 RGB"):
        model.encode(np.zeros((10, 10), np.uint8))
    emb = model.encode(textured_image(32, 32))
    with pytest.raises(UserError, match="finite"):
        model.decode(emb, np.array([[np.nan, 1.0]]))
