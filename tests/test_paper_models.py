"""The paper's transformers models on tiny random checkpoints: VIP-LLaVA as the class-label extractor, Grounding DINO
as the gate detector (prompt, thresholds, fixed text features), and clear errors for bad checkpoint directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import EngineError, UserError
from engines.hf.nouns import noun_of
from tests.paper_models import write_tiny_grounding_dino, write_tiny_vipllava

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def grounding_dir(tmp_path_factory):
    return write_tiny_grounding_dino(tmp_path_factory.mktemp("gdino"))


@pytest.fixture(scope="module")
def vipllava_dir(tmp_path_factory):
    return write_tiny_vipllava(tmp_path_factory.mktemp("vipllava"))


def _frame(seed=1, hw=(120, 160)):
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), np.uint8)


@pytest.mark.parametrize("answer, noun", [
    ("The object in the image is a potato.", "potato"),
    ("A red apple", "apple"),
    ("Bolts.", "bolts"),
    ("It is a hex nut lying on a table. A bolt too.", "nut"),
    ("The object in the image is", ""),
    ("", ""),
])
def test_the_noun_of_an_answer(answer, noun):
    assert noun_of(answer) == noun


def test_vipllava_names_the_masked_support(vipllava_dir):
    from engines.hf.vipllava import PROMPT, VipLlavaLabelExtractor, masked_support

    image = _frame(3, (60, 80))
    mask = np.zeros((60, 80), bool)
    mask[10:30, 20:40] = True
    crop = masked_support(image, mask)
    # Off-mask pixels are black; the crop is the mask's box plus 10 % (2 px) each side.
    assert crop.shape == (24, 24, 3) and not crop[:2].any() and (crop[2:22, 2:22] == image[10:30, 20:40]).all()
    extractor = VipLlavaLabelExtractor(vipllava_dir, max_new_tokens=4)
    assert extractor.extract(image, mask) == "potato"
    assert extractor.last_answer.split() == ["potato"] * 4
    half = VipLlavaLabelExtractor(vipllava_dir, max_new_tokens=2, dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16 and half.extract(image, mask) == "potato"
    assert PROMPT == "Name the object in the image?"


def test_an_answer_without_a_noun_is_a_clear_error(tmp_path):
    from engines.embedded import build_embedded_engines
    from engines.hf.vipllava import VipLlavaLabelExtractor
    from streamer.persense import PerSense
    from streamer.simulator import render_support

    # Its greedy answer is "the the the ...": no noun in it.
    extractor = VipLlavaLabelExtractor(write_tiny_vipllava(tmp_path / "the", first_word="the"), max_new_tokens=3)
    pipeline = PerSense(build_embedded_engines(), labeler=extractor)
    image, mask = render_support(seed=3, object_radius=24)
    with pytest.raises(UserError, match=r"answer 'the the the' names no object: set support.label") as caught:
        pipeline.set_support(image, mask)
    assert "\n" not in str(caught.value) and pipeline.support is None


def test_a_configured_label_skips_the_extractor(vipllava_dir):
    from engines.embedded import build_embedded_engines
    from streamer.persense import PerSense
    from streamer.simulator import render_support

    class Refusing:
        name = "refusing"

        def extract(self, image, mask):
            raise AssertionError("the extractor ran although a label was configured")

    pipeline = PerSense(build_embedded_engines(), labeler=Refusing(), label="  bolt ")
    assert pipeline.set_support(*render_support(seed=3, object_radius=24)).label == "bolt"


def test_grounding_prompt_and_label_tokens(grounding_dir):
    from engines.hf.grounding import GroundingDinoDetector, prompt_for

    assert prompt_for(" potato ") == "all potato."
    with pytest.raises(UserError, match="class label is empty"):
        prompt_for("  ")
    detector = GroundingDinoDetector(grounding_dir)
    detector.set_label("potato")
    tokens = detector.tokenizer.convert_ids_to_tokens(detector.prompt.input_ids[0].tolist())
    assert tokens == ["[CLS]", "all", "potato", ".", "[SEP]"]
    assert detector.prompt.label_positions.tolist() == [2]
    with pytest.raises(UserError, match="no token of its own"):
        detector.set_label("zebra")  # not in the tiny vocabulary: [UNK] only


def test_fixed_text_features_give_the_full_models_output(grounding_dir):
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

    from engines.hf.grounding import make_fixed_text_grounding, preprocess_frame

    model = GroundingDinoForObjectDetection.from_pretrained(grounding_dir, local_files_only=True).eval()
    processor = GroundingDinoProcessor.from_pretrained(grounding_dir, local_files_only=True)
    # A smooth frame: on pixel noise, PIL's antialiased resize and OpenCV's bilinear one differ by design.
    frame = cv2.GaussianBlur(_frame(2, (90, 150)), (0, 0), 6)
    frame = cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX)
    inputs = processor(images=frame, text="all potato.", return_tensors="pt")
    ours = torch.from_numpy(preprocess_frame(frame, 64, 96))
    # The same resize rule and normalisation as the checkpoint's processor (bilinear kernels differ slightly).
    assert ours.shape == inputs["pixel_values"].shape
    assert float((ours - inputs["pixel_values"]).abs().mean()) < 0.05
    with torch.inference_mode():
        full = model(**inputs)
        fixed = make_fixed_text_grounding(model, inputs["input_ids"], inputs["attention_mask"],
                                          inputs["token_type_ids"])
        logits, boxes = fixed(inputs["pixel_values"])
    assert torch.allclose(logits, full.logits, atol=1e-5) and torch.allclose(boxes, full.pred_boxes, atol=1e-5)
    # The model's own text encoder is back in place afterwards.
    assert type(model.model.text_backbone).__name__ != "_ConstantText"


def test_detector_boxes_follow_both_thresholds(grounding_dir):
    from engines.hf.grounding import GroundingDinoDetector, boxes_from_outputs

    detector = GroundingDinoDetector(grounding_dir, box_threshold=0.3, text_threshold=0.3)
    detector.set_label("potato")
    frame = _frame(4, (120, 160))
    boxes, scores = detector.detect(frame)
    assert len(boxes) > 0 and boxes.shape == (len(scores), 4)
    assert (np.diff(scores) <= 0).all() and (scores > 0.3).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 160).all() and (boxes[:, 3] <= 120).all()
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    logits, raw = detector.raw_outputs(frame)
    # The text threshold applies to the label's own token: above every probability, nothing is kept.
    label_prob = 1 / (1 + np.exp(-logits[0, :, 2]))
    none, _ = boxes_from_outputs(logits, raw, detector.prompt, (120, 160), 0.0, float(label_prob.max()) + 1e-6)
    assert len(none) == 0
    some, _ = boxes_from_outputs(logits, raw, detector.prompt, (120, 160), 0.0, float(np.median(label_prob)))
    assert 0 < len(some) < raw.shape[1]


def _break(src, dst, change):
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    tensors = load_file(dst / "model.safetensors")
    change(tensors)
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_bad_checkpoint_directories_are_one_line_naming_the_problem(grounding_dir, vipllava_dir, tmp_path):
    from engines.hf.grounding import GroundingDinoDetector
    from engines.hf.vipllava import VipLlavaLabelExtractor

    name = "model.input_proj_vision.0.0.weight"
    missing = _break(grounding_dir, tmp_path / "missing", lambda t: t.pop(name))
    misshapen = _break(grounding_dir, tmp_path / "misshapen", lambda t: t.__setitem__(name, torch.zeros(3, 3)))
    no_config = tmp_path / "no_config"
    shutil.copytree(grounding_dir, no_config)
    (no_config / "config.json").unlink()
    cases = [
        (lambda: GroundingDinoDetector(missing), rf"lacks tensor\(s\) {name}"),
        (lambda: GroundingDinoDetector(misshapen), rf"tensor {name} is 3x3, its config.json says 32x16x1x1"),
        (lambda: GroundingDinoDetector(vipllava_dir), "is a 'vipllava' model, not 'grounding-dino'"),
        (lambda: VipLlavaLabelExtractor(grounding_dir), "is a 'grounding-dino' model, not 'vipllava'"),
        (lambda: GroundingDinoDetector(no_config), "has no config.json"),
        (lambda: GroundingDinoDetector(tmp_path / "absent"), "checkpoint directory not found"),
    ]
    for build, message in cases:
        with pytest.raises(EngineError, match=message) as caught:
            build()
        assert "\n" not in str(caught.value)


def test_a_missing_language_model_tensor_is_named(vipllava_dir, tmp_path):
    from engines.hf.vipllava import VipLlavaLabelExtractor

    with (vipllava_dir / "config.json").open() as fh:
        assert json.load(fh)["model_type"] == "vipllava"
    from safetensors import safe_open

    with safe_open(vipllava_dir / "model.safetensors", "pt") as fh:
        key = next(k for k in fh.keys() if "layers.0.self_attn.q_proj" in k)
    broken = _break(vipllava_dir, tmp_path / "vl", lambda t: t.pop(key))
    with pytest.raises(EngineError, match=r"VIP-LLaVA checkpoint .* lacks tensor\(s\) .*q_proj.weight"):
        VipLlavaLabelExtractor(broken)


def test_the_onnx_export_takes_the_image_only_and_finds_the_same_boxes(grounding_dir, tmp_path):
    import onnx

    from engines.hf.grounding import GroundingDinoDetector
    from engines.hf.grounding_onnx import OnnxGroundingDetector
    from streamer.cli import main

    out = tmp_path / "export"
    assert main(["-q", "export", "grounding", "--model-dir", str(grounding_dir), "--label", "potato",
                 "--frame-size", "160x120", "--out", str(out)]) == 0
    graph = onnx.load(str(out / "grounding.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["pixel_values"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["prompt"] == "all potato." and manifest["input_hw"] == [64, 85]

    torch_detector = GroundingDinoDetector(grounding_dir, 0.3, 0.3)
    torch_detector.set_label("potato")
    onnx_detector = OnnxGroundingDetector(out, 0.3, 0.3, prefer_gpu=False)
    onnx_detector.set_label("potato")
    frame = _frame(7, (120, 160))
    (ours, our_scores), (theirs, their_scores) = onnx_detector.detect(frame), torch_detector.detect(frame)
    assert len(ours) > 0 and ours.shape == theirs.shape
    assert np.allclose(ours, theirs, atol=1e-2) and np.allclose(our_scores, their_scores, atol=1e-4)
    with pytest.raises(EngineError, match="is for the label 'potato', the support's is 'bolt'"):
        onnx_detector.set_label("bolt")
    from streamer.config import GroundingGateConfig
    from streamer.engine_factory import build_grounding_detector

    built = build_grounding_detector(GroundingGateConfig(model_dir=out, backend="onnxruntime", box_threshold=0.3))
    assert isinstance(built, OnnxGroundingDetector) and built.box_threshold == 0.3


def test_a_bad_grounding_export_is_one_line(tmp_path, grounding_dir):
    from engines.hf.grounding_onnx import OnnxGroundingDetector
    from streamer.cli import main

    with pytest.raises(EngineError, match="no manifest.json"):
        OnnxGroundingDetector(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"model_type": "countr"}))
    with pytest.raises(EngineError, match="not a grounding export"):
        OnnxGroundingDetector(tmp_path)
    assert main(["-q", "export", "grounding", "--model-dir", str(grounding_dir), "--label", "potato",
                 "--frame-size", "640by480", "--out", str(tmp_path / "o")]) == 2


def test_the_export_check_accepts_tied_proposals_swapped_and_nothing_else(monkeypatch):
    """Two-stage proposals with tied scores may be ranked in another order by ONNX Runtime than by torch: those
    queries swap boxes. Any other difference is refused."""
    import engines.ort
    from export.grounding import _check_parity

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 50, 8)).astype(np.float32)
    logits[..., 5:] = -np.inf  # past the text
    boxes = rng.uniform(size=(1, 50, 4)).astype(np.float32)
    got = {}

    class Session:
        def run(self, names, feed):
            return [got["logits"], got["boxes"]]

    monkeypatch.setattr(engines.ort, "create_session", lambda *args, **kwargs: Session())
    swapped_logits, swapped_boxes = logits.copy(), boxes.copy()
    swapped_logits[0, [3, 4]] = logits[0, [4, 3]] + 0.5
    swapped_boxes[0, [3, 4]] = boxes[0, [4, 3]]
    got.update(logits=swapped_logits, boxes=swapped_boxes)
    _check_parity(Path("x.onnx"), None, [logits, boxes], max_swapped=0.05)
    for name, index, change in [("logits", (0, 7, 1), 0.5), ("boxes", (0, 7, 2), 0.2)]:
        bad = {"logits": swapped_logits.copy(), "boxes": swapped_boxes.copy()}
        bad[name][index] += change
        got.update(bad)
        with pytest.raises(EngineError, match="differs from torch in 3 of 50 queries"):
            _check_parity(Path("x.onnx"), None, [logits, boxes], max_swapped=0.05)
    got.update(logits=swapped_logits, boxes=swapped_boxes)
    with pytest.raises(EngineError, match="in 2 of 50 queries"):
        _check_parity(Path("x.onnx"), None, [logits, boxes], max_swapped=0.01)  # 2 of 50 is too many here
    masked = logits.copy()
    masked[..., 4] = -np.inf
    got.update(logits=masked, boxes=boxes)
    with pytest.raises(EngineError, match="masks other text positions"):
        _check_parity(Path("x.onnx"), None, [logits, boxes])
