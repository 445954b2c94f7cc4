"""Exported SAM (ONNX Runtime, torch backend) vs segment_anything.SamPredictor on the same random weights.

Issue 3's acceptance: prompts batched N x 1 point, multimask, at frame sizes other than 1024 x 1024: pixel agreement
>= 99.9 % where the reference logit is not within 0.05 of zero, scores within 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.interfaces import PromptGuidance
from engines.sam import load_sam
from sam_testing import agreement, reference_predictor, textured_image, tiny_dir  # noqa: F401

torch.set_num_threads(1)
FRAME_SIZES = [(480, 640), (721, 1283)]


def _points(h: int, w: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([0, 0], [w - 1, h - 1], (n, 2)).astype(np.float32)


def check_against_predictor(model_dir, model_type, backend, frame_hw, n_points=6):
    h, w = frame_hw
    image = textured_image(h, w, seed=h)
    points = _points(h, w, n_points, seed=w)
    model = load_sam(model_dir, backend, threads=1)
    masks, scores, low_res = model.predict(image, points)
    assert masks.shape == (n_points, 3, h, w) and masks.dtype == bool
    assert scores.shape == (n_points, 3) and low_res.shape == (n_points, 3, 256, 256)

    predictor = reference_predictor(model_dir, model_type)
    predictor.set_image(image)
    for i, point in enumerate(points):
        ref_logits, ref_scores, ref_low = predictor.predict(
            point[None], np.array([1]), multimask_output=True, return_logits=True
        )
        assert agreement(ref_logits, masks[i]) >= 0.999, f"point {i}"
        np.testing.assert_allclose(scores[i], ref_scores, atol=1e-3)
        np.testing.assert_allclose(low_res[i], ref_low, atol=1e-3, rtol=0)


@pytest.mark.parametrize("frame_hw", FRAME_SIZES)
def test_onnxruntime_matches_sam_predictor(tiny_dir, frame_hw):
    check_against_predictor(tiny_dir, "tiny", "onnxruntime", frame_hw)


def test_torch_backend_matches_sam_predictor(tiny_dir):
    check_against_predictor(tiny_dir, "tiny", "torch", FRAME_SIZES[1])


def test_embedding_geometry(tiny_dir):
    model = load_sam(tiny_dir, threads=1)
    emb = model.encode(textured_image(721, 1283))
    # 721 x 1283 -> 575 x 1024 resized; 575 / 16 = 35.9 -> 36 cells cover it.
    assert emb.features.shape == (64, 64, 64) and emb.valid_hw == (36, 64) and emb.frame_hw == (721, 1283)
    out = model.decode_points(emb, np.array([[10.0, 20.0], [600.0, 300.0]]), best_only=False)
    assert out.logits.shape == (2, 3, 256, 256) and out.scores.shape == (2, 3)
    assert out.valid_hw == pytest.approx((575 / 4, 256.0))
    # The pipeline's default: the best candidate only, on the 144 x 256 cells that cover the frame.
    best = model.decode_points(emb, np.array([[10.0, 20.0], [600.0, 300.0]]))
    assert best.logits.shape == (2, 1, 144, 256) and best.scores.shape == (2, 1)
    assert best.valid_hw == out.valid_hw


def test_single_mask_output_matches_predictor(tiny_dir):
    image = textured_image(300, 200, seed=3)
    point = np.array([[50.0, 120.0]], np.float32)
    masks, scores, _ = load_sam(tiny_dir, threads=1).predict(image, point, multimask=False)
    predictor = reference_predictor(tiny_dir, "tiny")
    predictor.set_image(image)
    ref, ref_scores, _ = predictor.predict(point, np.array([1]), multimask_output=False, return_logits=True)
    assert masks.shape == (1, 1, 300, 200)
    assert agreement(ref, masks[0]) >= 0.999
    np.testing.assert_allclose(scores[0], ref_scores, atol=1e-3)


def test_batching_is_independent_of_batch_size(tiny_dir):
    image = textured_image(240, 320, seed=5)
    points = _points(240, 320, 7, seed=1)
    whole = load_sam(tiny_dir, threads=1, max_batch=64)
    split = load_sam(tiny_dir, threads=1, max_batch=3)
    emb_a, emb_b = whole.encode(image), split.encode(image)
    a = whole.decode_lowres(emb_a, points)
    b = split.decode_lowres(emb_b, points)
    np.testing.assert_allclose(a[0], b[0], atol=1e-4)
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    assert whole.decode_lowres(emb_a, np.zeros((0, 2)))[0].shape == (0, 3, 256, 256)


def _guidance(model, emb, seed=0):
    rng = np.random.default_rng(seed)
    vh, vw = emb.valid_hw
    proto = rng.normal(size=model.embed_dim).astype(np.float32)
    return PromptGuidance(proto / np.linalg.norm(proto), rng.uniform(-1, 1, (vh, vw)).astype(np.float32))


def test_persam_guidance_onnx_matches_torch_and_changes_masks(tiny_dir):
    image = textured_image(480, 640, seed=11)
    points = _points(480, 640, 4, seed=2)
    ort_model, torch_model = load_sam(tiny_dir, threads=1), load_sam(tiny_dir, "torch", threads=1)
    emb_o, emb_t = ort_model.encode(image), torch_model.encode(image)
    guidance = _guidance(ort_model, emb_o)
    guided_o = ort_model.decode_points(emb_o, points, guidance)
    guided_t = torch_model.decode_points(emb_t, points, guidance)
    np.testing.assert_allclose(guided_o.logits, guided_t.logits, atol=1e-3, rtol=0)
    np.testing.assert_allclose(guided_o.scores, guided_t.scores, atol=1e-4)
    plain = ort_model.decode_points(emb_o, points, None)
    assert np.abs(plain.logits - guided_o.logits).max() > 1e-2, "guidance had no effect"


def test_each_guidance_part_acts_alone(tiny_dir):
    """Target-guided attention alone and target-semantic prompting alone each change the decoder's output."""
    model = load_sam(tiny_dir, threads=1)
    emb = model.encode(textured_image(256, 256, seed=4))
    points = _points(256, 256, 2, seed=9)
    payload = emb.payload
    from engines.sam import transforms as tf

    coords, labels = tf.prompt_batch(tf.points_to_input(points, emb.frame_hw, payload.input_hw))
    bias, target = model.guidance_inputs(emb, _guidance(model, emb))
    zero_b, zero_t = np.zeros_like(bias), np.zeros_like(target)
    base = model.backend.decode(payload.embedding, coords, labels, zero_b, zero_t, True)[0]
    attn_only = model.backend.decode(payload.embedding, coords, labels, bias, zero_t, True)[0]
    sem_only = model.backend.decode(payload.embedding, coords, labels, zero_b, target, True)[0]
    assert np.abs(attn_only - base).max() > 1e-3
    assert np.abs(sem_only - base).max() > 1e-3
    # A constant bias shifts every attention logit equally: softmax ignores it (the log-normaliser argument).
    shifted = model.backend.decode(payload.embedding, coords, labels, bias + 3.0, zero_t, True)[0]
    np.testing.assert_allclose(shifted, attn_only, atol=1e-4)
