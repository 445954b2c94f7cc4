"""Unit tests of the embedded CPU engines on synthetic scenes whose answer is known."""

import numpy as np
import pytest

from engines.embedded import build_embedded_dmg, build_embedded_engines
from engines.embedded.features import grid_stride
from engines.interfaces import DecoderOutput, ImageEmbedding, PromptGuidance
from streamer.errors import EngineError
from streamer.persense.postprocess import instances_from_decoder
from streamer.persense.similarity import similarity_grid, support_prototype, to_frame
from streamer.simulator import render_scene, render_support


def _box(labels, i):
    ys, xs = np.nonzero(labels == i)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _centroid(labels, i):
    ys, xs = np.nonzero(labels == i)
    return [xs.mean(), ys.mean()]


@pytest.fixture(scope="module")
def scene():
    return render_scene(n_objects=60, n_distractors=8, seed=4)


@pytest.fixture(scope="module")
def engines():
    return build_embedded_engines()


def test_encoder_shapes_and_bad_input(engines):
    image = np.zeros((48, 64, 3), np.uint8)
    emb = engines.encoder.encode(image)
    c, h, w = emb.features.shape
    assert emb.frame_hw == (48, 64) and emb.valid_hw == (h, w) and c == 96
    assert emb.features.dtype == np.float32
    with pytest.raises(EngineError):
        engines.encoder.encode(np.zeros((48, 64), np.uint8))
    assert grid_stride((480, 640)) == 2 and grid_stride((1080, 1920)) == 5


def test_similarity_prefers_the_support_kind(engines, scene):
    image, mask = render_support(seed=4, object_radius=25)
    proto = support_prototype(engines.encoder.encode(image), mask)
    emb = engines.encoder.encode(scene.image)
    sim = to_frame(similarity_grid(emb, proto), scene.image.shape[:2])
    target = np.median(sim[scene.labels > 0])
    assert target > np.median(sim[scene.distractors]) + 0.3
    assert target > np.median(sim[(scene.labels == 0) & ~scene.distractors]) + 0.3


@pytest.mark.parametrize("n_exemplars", [1, 4])
def test_density_counts_targets_and_ignores_distractors(scene, n_exemplars):
    boxes = np.array([_box(scene.labels, i) for i in range(1, n_exemplars + 1)], np.float32)
    out = build_embedded_dmg().density(scene.image, None, boxes)
    assert out.density.shape == scene.image.shape[:2] and out.density.dtype == np.float32
    assert out.density.min() >= 0
    assert abs(out.density.sum() - out.count) < 1e-3 * max(out.count, 1)
    assert abs(out.count - scene.count) <= 0.1 * scene.count
    # The mass sits on the targets, none on the distractors.
    assert out.density[scene.distractors].sum() < 0.5
    assert out.density[scene.labels > 0].sum() > 0.8 * out.count


def test_density_accepts_a_foreign_embedding(scene):
    foreign = ImageEmbedding(np.ones((8, 4, 4), np.float32), scene.image.shape[:2], (4, 4), payload="sam")
    boxes = np.array([_box(scene.labels, 1)], np.float32)
    a = build_embedded_dmg().density(scene.image, foreign, boxes)
    b = build_embedded_dmg().density(scene.image, None, boxes)
    assert a.count == b.count and np.allclose(a.density, b.density)


def test_density_follows_the_exemplar_kind():
    # With a distractor as the exemplar, the distractors are counted and the targets are not.
    scene = render_scene(n_objects=30, n_distractors=10, seed=6)
    from scipy import ndimage

    parts, n = ndimage.label(scene.distractors)
    sizes = np.bincount(parts.ravel())[1:]
    biggest = int(np.argmax(sizes)) + 1
    box = np.array([_box(parts, biggest)], np.float32)
    out = build_embedded_dmg().density(scene.image, None, box)
    assert 8 <= out.count <= 12
    assert out.density[scene.labels > 0].sum() < 1.0


def test_decoder_single_point_segments_its_object(engines, scene):
    emb = engines.encoder.encode(scene.image)
    for i in (3, 17, 42):
        point = np.array([_centroid(scene.labels, i)], np.float32)
        out = engines.decoder.decode_points(emb, point, None)
        inst = instances_from_decoder(out, point, scene.image.shape[:2], min_area=1)
        assert len(inst) == 1
        truth = scene.labels == i
        pred = np.zeros_like(truth)
        inst[0].paste(pred)
        assert (pred & truth).sum() / (pred | truth).sum() > 0.7
        assert 0.0 <= inst[0].score <= 1.0


def test_decoder_separates_touching_objects_jointly(engines, scene):
    lab = scene.labels
    # Pairs of touching targets: 4-adjacent pixels with two different labels.
    right = (lab[:, :-1] > 0) & (lab[:, 1:] > 0) & (lab[:, :-1] != lab[:, 1:])
    pairs = sorted(set(map(tuple, np.sort(np.stack([lab[:, :-1][right], lab[:, 1:][right]], 1), 1))))[:8]
    assert len(pairs) == 8
    emb = engines.encoder.encode(scene.image)
    ious = []
    for a, b in pairs:
        points = np.array([_centroid(lab, a), _centroid(lab, b)], np.float32)
        inst = instances_from_decoder(engines.decoder.decode_points(emb, points, None), points, lab.shape)
        assert len(inst) == 2  # one mask each, not one mask for the clump
        for truth_id in (a, b):
            truth = lab == truth_id
            best = 0.0
            for one in inst:
                pred = np.zeros_like(truth)
                one.paste(pred)
                best = max(best, (pred & truth).sum() / (pred | truth).sum())
            ious.append(best)
    assert min(ious) > 0.6 and np.median(ious) > 0.75


def test_decoder_all_prompts_and_guidance(engines, scene):
    emb = engines.encoder.encode(scene.image)
    points = np.array([_centroid(scene.labels, i) for i in range(1, scene.count + 1)], np.float32)
    image, mask = render_support(seed=4, object_radius=25)
    proto = support_prototype(engines.encoder.encode(image), mask)
    guidance = PromptGuidance(proto, similarity_grid(emb, proto))
    for g in (None, guidance):
        out = engines.decoder.decode_points(emb, points, g)
        assert isinstance(out, DecoderOutput) and out.logits is None
        assert out.scores.shape == (len(points), 1)
        assert np.all((out.scores >= 0) & (out.scores <= 1))
        inst = instances_from_decoder(out, points, scene.image.shape[:2])
        assert abs(len(inst) - scene.count) <= 2
    # Prompts on the same object share its mask: the duplicate gets none.
    twice = np.repeat(points[:1], 2, axis=0) + np.array([[0, 0], [2, 1]], np.float32)
    out = engines.decoder.decode_points(emb, twice, None)
    assert len(instances_from_decoder(out, twice, scene.image.shape[:2])) == 1


def test_decoder_output_stays_small_for_500_prompts_at_1080p(engines):
    scene = render_scene(1920, 1080, n_objects=500, n_distractors=0, seed=2)
    emb = engines.encoder.encode(scene.image)
    points = np.array([_centroid(scene.labels, i) for i in range(1, scene.count + 1)], np.float32)
    out = engines.decoder.decode_points(emb, points, None)
    assert out.labels is not None and out.labels.size <= 100_000
    inst = instances_from_decoder(out, points, scene.image.shape[:2])
    assert len(inst) >= 0.9 * scene.count


def test_decoder_needs_its_own_embedding(engines):
    foreign = ImageEmbedding(np.ones((4, 4, 4), np.float32), (16, 16), (4, 4))
    with pytest.raises(EngineError):
        engines.decoder.decode_points(foreign, np.zeros((1, 2), np.float32))
    emb = engines.encoder.encode(np.zeros((32, 32, 3), np.uint8))
    out = engines.decoder.decode_points(emb, np.zeros((0, 2), np.float32))
    assert out.scores.shape == (0, 1)
