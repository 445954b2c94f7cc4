"""Frames of several cameras through one encoder call (`persense export sam --encoder-batch`, SamModel.encode_batch):
the same answers as one call per frame, within the parity tolerances (low-res logits and scores within 1e-3)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from engines.sam import load_sam
from sam_testing import TINY_SEED, textured_image, tiny_dir  # noqa: F401

# Four cameras of three sizes: each frame is resized and padded to the encoder's input on its own.
FRAMES = [(480, 640, 0), (480, 640, 1), (721, 1283, 2), (300, 200, 3)]


@pytest.fixture(scope="module")
def batched_dir(tmp_path_factory):
    from export.sam import load_model
    from export.sam_onnx import export_onnx

    out = tmp_path_factory.mktemp("sam-tiny-batched")
    sam, info = load_model("tiny", None, TINY_SEED, out)
    export_onnx(sam, "tiny", out, checkpoint_info=info, encoder_batch=True)
    return out


def _frames() -> list[np.ndarray]:
    return [textured_image(h, w, seed=seed) for h, w, seed in FRAMES]


@pytest.mark.slow  # the batched export: 8-19 s on 2 shared cores
def test_a_batched_export_has_a_named_batch_dimension_and_a_plain_one_has_1(batched_dir, tiny_dir):
    def batch_dims(path):
        graph = onnx.load(str(path), load_external_data=False).graph
        return [value.type.tensor_type.shape.dim[0] for value in (graph.input[0], graph.output[0])]

    assert all(dim.dim_param == "batch" for dim in batch_dims(batched_dir / "encoder.onnx"))
    assert batch_dims(tiny_dir / "encoder.onnx")[0].dim_value == 1  # its image input; the output's is unnamed
    assert load_sam(batched_dir, threads=1).backend.encoder_batches
    assert not load_sam(tiny_dir, threads=1).backend.encoder_batches


@pytest.mark.slow
def test_batched_encodings_decode_as_one_frame_at_a_time(batched_dir):
    model = load_sam(batched_dir, threads=1)
    frames = _frames()
    calls = []
    run = model.backend.encoder.run
    model.backend.encoder.run = lambda inputs, *args, **kw: calls.append(len(inputs["image"])) or run(inputs, *args, **kw)
    batched = model.encode_batch(frames)
    assert calls == [len(frames)]  # one encoder call for the four cameras
    singles = [model.encode(frame) for frame in frames]
    rng = np.random.default_rng(5)
    for frame, one, many in zip(frames, singles, batched):
        assert many.frame_hw == one.frame_hw and many.valid_hw == one.valid_hw
        np.testing.assert_allclose(many.features, one.features, atol=1e-4, rtol=0)
        h, w = frame.shape[:2]
        points = rng.uniform([0, 0], [w - 1, h - 1], (5, 2)).astype(np.float32)
        a, b = model.decode_points(one, points, best_only=False), model.decode_points(many, points, best_only=False)
        np.testing.assert_allclose(b.logits, a.logits, atol=1e-3, rtol=0)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3, rtol=0)


def test_a_plain_export_encodes_a_batch_one_frame_at_a_time_with_the_same_answers(tiny_dir):
    model = load_sam(tiny_dir, threads=1)
    frames = _frames()[:2]
    for one, many in zip([model.encode(frame) for frame in frames], model.encode_batch(frames)):
        assert np.array_equal(many.features, one.features)
