"""The paper's full pipeline on tiny random transformers checkpoints: label -> grounding prompt -> P_max in the best
box (Eq. 1) -> PPSM's box gate (Algorithm 2), through the library, `persense segment` and `persense run`."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from engines.embedded import build_embedded_engines
from streamer.cli import main
from streamer.gates import DetectorGate
from streamer.persense import PerSense
from streamer.persense.ppsm import inside_any_box
from streamer.simulator import render_scene, render_support
from tests.paper_models import write_tiny_grounding_dino, write_tiny_vipllava
from tests.stream_capture import run_and_collect
from tests.test_stream_e2e import _free_port

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    return write_tiny_grounding_dino(root / "gdino"), write_tiny_vipllava(root / "vipllava")


@pytest.fixture(scope="module")
def scene():
    return render_scene(320, 240, n_objects=14, n_distractors=2, seed=5, object_radius=18)


class _Recording:
    """Wraps an engine and records the arguments of one method's calls."""

    def __init__(self, inner, method):
        self.inner, self.calls = inner, []
        setattr(self, method, self._record(getattr(inner, method)))

    def _record(self, fn):
        def call(*args, **kwargs):
            self.calls.append(args)
            return fn(*args, **kwargs)
        return call

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _grounded_pipeline(gdino_dir, box_threshold=0.3, text_threshold=0.3, every=1, labeler=None, label="potato"):
    from engines.hf.grounding import GroundingDinoDetector

    engines = build_embedded_engines()
    engines.decoder = _Recording(engines.decoder, "decode_points")
    detector = _Recording(GroundingDinoDetector(gdino_dir, box_threshold, text_threshold), "detect")
    gate = DetectorGate(detector, 0.0, every)
    return PerSense(engines, gate=gate, labeler=labeler, label=label), detector, gate


def test_the_grounded_boxes_gate_the_prompts_and_hold_p_max(model_dirs, scene):
    pipeline, detector, gate = _grounded_pipeline(model_dirs[0])
    support = pipeline.set_support(*render_support(seed=3, object_radius=18))
    assert support.label == "potato" and detector.prompt.text == "all potato."
    boxes_seen = []
    original = gate.boxes
    gate.boxes = lambda image: boxes_seen.append(original(image)) or boxes_seen[-1]
    result = pipeline.segment(scene.image)
    boxes = boxes_seen[0]
    assert len(boxes) > 0 and result.label == "potato" and result.reason == ""
    # Eq. 1: the first decoder call of a frame decodes the priors; P_max, the first, lies in the best box.
    priors = pipeline.engines.decoder.calls[0][1]
    x, y = priors[0]
    assert boxes[0][0] <= x <= boxes[0][2] and boxes[0][1] <= y <= boxes[0][3]
    # Algorithm 2: every prompt decoded lies in some box.
    assert len(result.points) > 0 and inside_any_box(result.points, boxes).all()


def test_the_gate_drops_the_prompts_outside_its_boxes(model_dirs, scene):
    """Same frame, same boxes: without the gate some prompts fall outside the boxes; with it none does."""
    from streamer.persense.idm import idm
    from streamer.persense.ppsm import ppsm

    pipeline, detector, gate = _grounded_pipeline(model_dirs[0], box_threshold=0.9)
    pipeline.set_support(*render_support(seed=3, object_radius=18))
    boxes = gate.boxes(scene.image)
    assert 0 < len(boxes)
    density = build_embedded_engines().dmg
    embedding = pipeline.encode(scene.image).embedding
    from streamer.persense.similarity import similarity_grid, to_frame

    similarity = to_frame(similarity_grid(embedding, pipeline.support.prototype), scene.image.shape[:2])
    y, x = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
    w, h = pipeline.support.object_size
    out = density.density(scene.image, embedding, np.array([[x - w / 2, y - h / 2, x + w / 2, y + h / 2]], np.float32))
    candidates = idm(out.density)
    free = ppsm(candidates, similarity, max(out.count, 3.0), None)
    gated = ppsm(candidates, similarity, max(out.count, 3.0), boxes)
    outside = ~inside_any_box(free, boxes)
    assert outside.any(), "the boxes must leave some prompt out for this test to mean something"
    kept = {tuple(p) for p in gated.tolist()}
    assert kept == {tuple(p) for p in free[~outside].tolist()}


def test_no_grounded_box_counts_zero_and_says_why(model_dirs, scene):
    pipeline, detector, _ = _grounded_pipeline(model_dirs[0], box_threshold=1.0)
    pipeline.set_support(*render_support(seed=3, object_radius=18))
    result = pipeline.segment(scene.image)
    assert result.count == 0 and len(result.points) == 0
    assert "found no box for 'all potato.' above box_threshold 1.0" in result.reason
    from streamer.schema import result_to_dict

    doc = result_to_dict(result)
    assert doc["reason"] == result.reason and doc["label"] == "potato" and doc["count"] == 0


def test_the_detector_runs_every_n_frames_and_again_for_a_new_label(model_dirs, scene):
    pipeline, detector, gate = _grounded_pipeline(model_dirs[0], every=3)
    pipeline.set_support(*render_support(seed=3, object_radius=18))
    for _ in range(7):
        gate.boxes(scene.image)
    assert len(detector.calls) == 3  # frames 0, 3, 6
    gate.set_label("bolt")
    gate.boxes(scene.image)
    assert len(detector.calls) == 4 and detector.prompt.text == "all bolt."


def test_the_label_is_cached_with_the_prototype(model_dirs, tmp_path):
    from engines.hf.vipllava import VipLlavaLabelExtractor
    from streamer.stream.support import PrototypeCache, apply_support

    extractor = _Recording(VipLlavaLabelExtractor(model_dirs[1], max_new_tokens=2), "extract")
    pipeline, _, _ = _grounded_pipeline(model_dirs[0], labeler=extractor, label=None)
    cache = PrototypeCache(tmp_path)
    image, mask = render_support(seed=3, object_radius=18)
    assert apply_support(pipeline, image, mask, cache).label == "potato"
    assert apply_support(pipeline, image, mask, cache).label == "potato"
    assert len(extractor.calls) == 1
    # Another labeler's cached label is not taken.
    extractor.name = "other"
    apply_support(pipeline, image, mask, cache)
    assert len(extractor.calls) == 2


def test_a_grounding_gate_without_any_label_is_a_clear_error(model_dirs):
    pipeline, _, _ = _grounded_pipeline(model_dirs[0], label=None)
    from streamer.errors import UserError

    with pytest.raises(UserError, match="needs the object's name: set support.label"):
        pipeline.set_support(*render_support(seed=3, object_radius=18))


def _paper_config(tmp_path, model_dirs, **gate) -> str:
    support_image, support_mask = render_support(seed=3, object_radius=18)
    cv2.imwrite(str(tmp_path / "support.png"), cv2.cvtColor(support_image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), support_mask.astype(np.uint8) * 255)
    config = {
        "engines": {"cle": {"model_dir": str(model_dirs[1]), "max_new_tokens": 3}},
        "gate": {"kind": "grounding", "grounding": {"model_dir": str(model_dirs[0]), "box_threshold": 0.3,
                                                    "text_threshold": 0.3, **gate}},
        "support": {"image": "support.png", "mask": "mask.png"},
    }
    path = tmp_path / "paper.yaml"
    path.write_text(json.dumps(config))
    return str(path)


def test_persense_segment_runs_the_paper_pipeline(model_dirs, scene, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "q.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    config = _paper_config(tmp_path, model_dirs)
    assert main(["-q", "segment", "--config", config, "--out", str(tmp_path / "out"), str(tmp_path / "q.png")]) == 0
    doc = json.loads((tmp_path / "out" / "q.json").read_text())
    assert doc["label"] == "potato" and doc["count"] == len(doc["instances"]) and "reason" not in doc

    empty = _paper_config(tmp_path, model_dirs, box_threshold=1.0)
    assert main(["-q", "segment", "--config", empty, "--out", str(tmp_path / "none"), str(tmp_path / "q.png")]) == 0
    doc = json.loads((tmp_path / "none" / "q.json").read_text())
    assert doc["count"] == 0 and "no box for 'all potato.'" in doc["reason"]


def test_persense_segment_with_a_broken_checkpoint_is_one_line(model_dirs, tmp_path, capsys):
    config = _paper_config(tmp_path, (model_dirs[1], model_dirs[1]))  # VIP-LLaVA where Grounding DINO belongs
    assert main(["-q", "segment", "--config", config, "--out", str(tmp_path / "o"), str(tmp_path / "support.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a 'vipllava' model, not 'grounding-dino'" in err[0]


def test_persense_run_publishes_the_label_and_gated_results(model_dirs, tmp_path):
    config = _paper_config(tmp_path, model_dirs)
    pub = _free_port()
    cmd = [sys.executable, "-m", "streamer", "run", "--config", config,
           "--source", "sim:?objects=12&distractors=2&width=256&height=192&fps=10",
           "--publish", f"tcp://127.0.0.1:{pub}", "--control", f"tcp://127.0.0.1:{_free_port()}",
           "--metrics-port", "0", "--max-frames", "20", "--cache-dir", str(tmp_path / "cache")]
    code, stderr, messages = run_and_collect(cmd, f"tcp://127.0.0.1:{pub}", b"persense/cam0/")
    results = [header for topic, header in messages if topic.endswith(b"/result")]
    statuses = [header for topic, header in messages if topic.endswith(b"/status")]
    assert code == 0, stderr[-2000:]
    assert results and all(r["label"] == "potato" for r in results)
    assert any(s.get("label") == "potato" for s in statuses)
