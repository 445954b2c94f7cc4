"""SAM engines under the PerSense pipeline: configs/sam-vit-b.yaml -> build_engines -> PerSense -> segment, and the
exemplar-correlation density map generator on a synthetic embedding with a known count."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from streamer.engine_factory import build_engines
from engines.interfaces import DecoderOutput, ImageEmbedding, PromptGuidance
from engines.sam import SamCorrelationDmg
from sam_testing import agreement, tiny_dir  # noqa: F401
from streamer.cli import main
from streamer.config import load_config
from streamer.persense import PerSense
from streamer.schema import result_to_dict

ROOT = Path(__file__).resolve().parents[1]


def _config_for(model_dir: Path, tmp_path: Path, backend: str = "onnxruntime") -> Path:
    """configs/sam-vit-b.yaml with the model directory (and backend) pointed at a test export."""
    raw = yaml.safe_load((ROOT / "configs" / "sam-vit-b.yaml").read_text())
    raw["engines"]["sam"]["model_dir"] = str(model_dir)
    raw["engines"]["sam"]["backend"] = backend
    path = tmp_path / f"sam-{backend}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _scene(h: int = 240, w: int = 320) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((h, w, 3), 35, np.uint8)
    for i in range(3):
        for j in range(5):
            cv2.circle(image, (32 + 62 * j, 40 + 75 * i), 15, (210, 170, 60), -1)
    mask = np.zeros((h, w), bool)
    cv2.circle(mask.view(np.uint8), (32, 40), 15, 1, -1)
    return image, mask


def _check_result(result, h: int, w: int) -> None:
    assert (result.width, result.height) == (w, h)
    assert {"encode", "similarity", "decode"} <= set(result.timings_ms)
    assert np.isfinite(result.density_count) and result.density_count >= 0
    for inst in result.instances:
        x0, y0, x1, y1 = inst.bbox
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert inst.mask.shape == (y1 - y0, x1 - x0) and inst.mask.dtype == bool
    doc = result_to_dict(result)
    assert doc["count"] == len(result.instances)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_config_builds_engines_and_segments(tiny_dir, tmp_path, backend):
    config = load_config(_config_for(tiny_dir, tmp_path, backend))
    assert config.engines.segmenter == "sam" and config.engines.dmg == "sam-correlation"
    engines = build_engines(config.engines)
    assert engines.name.startswith("sam-tiny-")
    assert isinstance(engines.dmg, SamCorrelationDmg)
    pipeline = PerSense(engines, config.pipeline)
    image, mask = _scene()
    pipeline.set_support(image, mask)
    result = pipeline.segment(image)
    _check_result(result, *image.shape[:2])


def test_backends_agree_through_the_pipeline(tiny_dir, tmp_path):
    """Same weights, same frame: ONNX Runtime and segment-anything in torch give the same prompts and masks."""
    image, mask = _scene()
    results = []
    for backend in ("onnxruntime", "torch"):
        config = load_config(_config_for(tiny_dir, tmp_path, backend))
        pipeline = PerSense(build_engines(config.engines), config.pipeline)
        pipeline.set_support(image, mask)
        results.append(pipeline.segment(image))
    a, b = results
    np.testing.assert_allclose(a.points, b.points, atol=1e-3)
    assert len(a.instances) == len(b.instances)
    for x, y in zip(a.instances, b.instances):
        assert x.bbox == y.bbox and abs(x.score - y.score) < 1e-3


def test_segment_cli_runs_end_to_end(tiny_dir, tmp_path):
    image, mask = _scene()
    cv2.imwrite(str(tmp_path / "support.png"), image[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "support_mask.png"), mask.astype(np.uint8) * 255)
    cv2.imwrite(str(tmp_path / "query.png"), image[::-1, :, ::-1])
    out = tmp_path / "out"
    code = main([
        "-q", "segment", "--config", str(_config_for(tiny_dir, tmp_path)), "--support", str(tmp_path / "support.png"),
        "--support-mask", str(tmp_path / "support_mask.png"), "--out", str(out), str(tmp_path / "query.png"),
    ])
    assert code == 0
    doc = json.loads((out / "query.json").read_text())
    assert doc["width"] == 320 and doc["height"] == 240


def _synthetic_embedding(cells, frame_hw=(480, 640), grid=(48, 64), seed=0):
    """3 x 3-cell objects centred on `cells` (gx, gy) share one feature direction, the background another, plus
    noise: a known count. The 48 x 64 valid grid maps onto 480 x 640, 10 pixels a cell.
    Returns the embedding and the objects' centres in frame pixels."""
    rng = np.random.default_rng(seed)
    c = 32
    obj, bg = rng.normal(size=c), rng.normal(size=c)
    feats = np.tile(bg[:, None, None], (1, 64, 64)) + rng.normal(0, 0.3, (c, 64, 64))
    for gx, gy in cells:
        feats[:, gy - 1 : gy + 2, gx - 1 : gx + 2] = obj[:, None, None] + rng.normal(0, 0.3, (c, 3, 3))
    centres = [((gx + 0.5) * 10, (gy + 0.5) * 10) for gx, gy in cells]
    return ImageEmbedding(feats.astype(np.float32), frame_hw, grid), centres


def test_correlation_dmg_counts_and_unit_mass():
    emb, centres = _synthetic_embedding([(8 + 11 * j, 7 + 12 * i) for i in range(3) for j in range(5)])
    image = np.zeros((480, 640, 3), np.uint8)
    exemplar = np.array([[centres[0][0] - 15, centres[0][1] - 15, centres[0][0] + 15, centres[0][1] + 15]], np.float32)
    out = SamCorrelationDmg().density(image, emb, exemplar)
    assert out.density.shape == (480, 640) and out.density.dtype == np.float32 and out.density.min() >= 0
    assert out.count == pytest.approx(len(centres), abs=0.5)
    assert out.count == pytest.approx(float(out.density.sum()), rel=1e-4)
    for x, y in centres:  # each object's neighbourhood holds about one unit of mass
        x0, y0 = int(max(x - 45, 0)), int(max(y - 45, 0))
        assert out.density[y0 : int(y) + 45, x0 : int(x) + 45].sum() == pytest.approx(1.0, abs=0.15)


def test_correlation_dmg_without_exemplars_or_matches():
    emb, _ = _synthetic_embedding([])
    image = np.zeros((480, 640, 3), np.uint8)
    assert SamCorrelationDmg().density(image, emb, np.zeros((0, 4))).count == 0.0
    # An exemplar on plain background: background cells all look alike, so no single object stands out as one.
    out = SamCorrelationDmg().density(image, emb, np.array([[300, 200, 330, 230]], np.float32))
    assert np.isfinite(out.count) and out.density.shape == (480, 640)


def test_decoder_output_maps_onto_the_frame(tiny_dir):
    from engines.sam import load_sam
    from engines.sam.transforms import upscale_logits
    from streamer.persense.postprocess import instances_from_decoder

    model = load_sam(tiny_dir, threads=1)
    image, _ = _scene(200, 500)
    emb = model.encode(image)
    points = np.array([[40.0, 40.0], [300.0, 150.0]], np.float32)
    out = model.decode_points(emb, points)
    assert isinstance(out, DecoderOutput) and out.valid_hw == pytest.approx((410 / 4, 256.0))  # 200 x 500 -> 410 x 1024
    # SAM's two-step upscaling (decode()) and the pipeline's one-step, box-cropped upsampling of the fractional
    # valid grid agree on the best mask wherever the logit is clearly decided.
    _, scores, low_res = model.decode(emb, points)
    instances = instances_from_decoder(out, points, (200, 500), duplicate_iou=1.0, min_score=0.0, min_area=0)
    assert instances
    for inst in instances:
        i = int(np.argmin(np.abs(points - np.asarray(inst.point)).sum(axis=1)))
        full_logits = upscale_logits(low_res[i, int(np.argmax(scores[i]))], emb.payload.input_hw, (200, 500))
        canvas = np.zeros((200, 500), bool)
        inst.paste(canvas)
        assert agreement(full_logits, canvas) > 0.995


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_pipeline_decoder_keeps_exactly_the_best_of_three(tiny_dir, backend):
    """decode_points' default (the pipeline's) is each prompt's best-of-3 from the full output, cropped to the
    valid cells, chosen per batch: 7 prompts in batches of 3 here, guided and plain."""
    from engines.sam import load_sam
    from streamer.persense.postprocess import instances_from_decoder

    model = load_sam(tiny_dir, backend, threads=1, max_batch=3)
    image, _ = _scene(200, 500)
    emb = model.encode(image)
    points = np.random.default_rng(3).uniform([0, 0], [499, 199], (7, 2)).astype(np.float32)
    vh, vw = emb.valid_hw
    rng = np.random.default_rng(0)
    guidance = PromptGuidance(rng.normal(size=model.embed_dim).astype(np.float32),
                              rng.uniform(-1, 1, (vh, vw)).astype(np.float32))
    for g in (None, guidance):
        full = model.decode_points(emb, points, g, best_only=False)
        best = model.decode_points(emb, points, g)
        assert full.logits.shape == (7, 3, 256, 256) and best.logits.shape == (7, 1, 103, 256)  # ceil(410 / 4)
        pick = np.argmax(full.scores, axis=1)
        np.testing.assert_array_equal(best.scores[:, 0], full.scores[np.arange(7), pick])
        np.testing.assert_array_equal(best.logits[:, 0], full.logits[np.arange(7), pick, :103, :])
        assert best.valid_hw == full.valid_hw
        a = instances_from_decoder(full, points, (200, 500), min_area=1)
        b = instances_from_decoder(best, points, (200, 500), min_area=1)
        assert [(x.bbox, x.score) for x in a] == [(y.bbox, y.score) for y in b]
        assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a, b))
    assert model.decode_points(emb, np.zeros((0, 2), np.float32)).logits.shape == (0, 1, 103, 256)


def test_best_candidate_on_numpy_and_torch():
    """Selection picks the highest score (the first of equal ones, as np.argmax) on host or device tensors."""
    import torch

    from engines.sam.backends import best_candidate

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3, 8, 8)).astype(np.float32)
    scores = np.array([[0.1, 0.9, 0.2], [0.7, 0.7, 0.1], [0.0, 0.1, 0.3], [0.5, 0.4, 0.3]], np.float32)
    lo, sc = best_candidate(logits, scores, (5, 6))
    assert lo.shape == (4, 1, 5, 6) and sc.shape == (4, 1)
    np.testing.assert_array_equal(sc[:, 0], scores[np.arange(4), [1, 0, 2, 0]])
    for i, k in enumerate([1, 0, 2, 0]):
        np.testing.assert_array_equal(lo[i, 0], logits[i, k, :5, :6])
    t_lo, t_sc = best_candidate(torch.from_numpy(logits), torch.from_numpy(scores), (5, 6))
    np.testing.assert_array_equal(t_lo.numpy(), lo)
    np.testing.assert_array_equal(t_sc.numpy(), sc)


def test_negative_examples_work_on_sam_features(tiny_dir, tmp_path):
    """The "not this" rule is the pipeline's, over any encoder's features: with SAM's, an amber disc matches the
    amber support's prototype and a blue one the blue negative's (exact discs, so the random tiny decoder's
    masks do not matter); the pipeline takes the negative, refuses its own support as one, and reports it."""
    from streamer.errors import UserError
    from streamer.persense.negatives import instance_features, matched_elsewhere, prototype_matches
    from streamer.types import Instance

    config = load_config(_config_for(tiny_dir, tmp_path))
    pipeline = PerSense(build_engines(config.engines), config.pipeline)
    image, mask = _scene()
    blue = (40, 90, 220)
    for j in (1, 3):  # two of the top row's discs are blue: the look-alikes
        cv2.circle(image, (32 + 62 * j, 40), 15, blue, -1)
    pipeline.set_support(image, mask)
    with pytest.raises(UserError, match="own example"):
        pipeline.add_negative(image, mask)
    negative_mask = np.zeros(mask.shape, bool)
    cv2.circle(negative_mask.view(np.uint8), (32 + 62, 40), 15, 1, -1)
    negative = pipeline.add_negative(image, negative_mask)
    assert negative.prototype.shape == pipeline.support.prototype.shape  # SAM's channels
    discs = []
    for i in range(3):
        for j in range(5):
            x, y = 32 + 62 * j, 40 + 75 * i
            disc = np.zeros((31, 31), np.uint8)
            cv2.circle(disc, (15, 15), 15, 1, -1)
            discs.append(Instance(len(discs), 1.0, (x - 15, y - 15, x + 16, y + 16), disc.astype(bool)))
    embedding = pipeline.encode(image).embedding
    assert instance_features(embedding, discs).shape == (15, negative.prototype.shape[0])
    prototypes = np.stack([pipeline.support.prototype, negative.prototype])
    dropped = matched_elsewhere(prototype_matches(embedding, discs, prototypes))
    assert np.flatnonzero(dropped).tolist() == [1, 3]
    result = pipeline.segment(image)
    assert result.negatives == 1 and result_to_dict(result)["negatives"] == 1
