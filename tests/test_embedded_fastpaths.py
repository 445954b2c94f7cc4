"""The embedded engines' fast paths give the answers of the straightforward code they replace.

Each test keeps the plain version as the reference and compares on real maps from the simulator, so a
speed-up that changes an answer fails here, not only in the quality figures.
"""

import numpy as np
import pytest

from engines.embedded.encoder import EmbeddedImageEncoder
from engines.embedded.features import compute_descriptors, embed, sample
from engines.embedded.rays import _percentile_over_rays, group_prompts, radial_gradients
from engines.embedded.features import row_medians
from engines.embedded.rims import ANGLES, RimField, order_statistic, rim_map
from streamer.persense.presence import instance_similarity
from streamer.simulator import render_scene
from streamer.types import Instance


@pytest.fixture(scope="module")
def scene():
    return render_scene(n_objects=60, n_distractors=8, seed=7)


@pytest.fixture(scope="module")
def desc(scene):
    return compute_descriptors(scene.image)


def test_descriptor_cache_computes_once(desc):
    calls = []
    first = desc.cached(("test", 1), lambda: calls.append(1) or np.arange(3))
    again = desc.cached(("test", 1), lambda: calls.append(1) or np.arange(4))
    assert first is again and len(calls) == 1


def _rim_reference(gx, gy, radius):
    """Per cell: for each direction, the largest |radial derivative| at 0.8, 1.0 and 1.2 radii along it
    (edges replicated), then the 30th percentile over directions (as numpy computes it on sorted values)."""
    h, w = gx.shape
    per_angle = []
    for k in range(ANGLES):
        a = 2 * np.pi * k / ANGLES
        d = np.abs(gx * np.cos(a).astype(np.float32) + gy * np.sin(a).astype(np.float32))
        best = np.zeros_like(d)
        for f in (0.8, 1.0, 1.2):
            dx, dy = int(round(radius * f * np.cos(a))), int(round(radius * f * np.sin(a)))
            ys = np.clip(np.arange(h) + dy, 0, h - 1)
            xs = np.clip(np.arange(w) + dx, 0, w - 1)
            best = np.maximum(best, d[ys][:, xs])
        per_angle.append(best)
    return np.sort(np.stack(per_angle), axis=0)[int(round(0.3 * (ANGLES - 1)))]


@pytest.mark.parametrize("radius", [2.0, 5.3, 9.0])
def test_rim_map_matches_the_plain_definition(desc, radius):
    gx, gy = radial_gradients(desc.smoothed(0.8))
    assert np.allclose(rim_map(gx, gy, radius), _rim_reference(gx, gy, radius), atol=1e-5)


def test_sample_matches_bilinear_interpolation_beyond_remaps_size_limit():
    values = np.arange(12, dtype=np.float32).reshape(3, 4) * 2
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 3, 40_000).astype(np.float32)  # more samples than cv2.remap takes in one row
    ys = rng.uniform(0, 2, 40_000).astype(np.float32)
    want = 2 * (ys * 4 + xs)  # the map is linear, so bilinear interpolation is exact
    assert np.allclose(sample(values, xs, ys), want, atol=1e-3)


@pytest.mark.parametrize("pairwise_limit", [2048, 0])  # all pairs at once, and row by row
def test_group_prompts_matches_the_pairwise_loop(pairwise_limit, monkeypatch):
    import engines.embedded.rays as rays

    monkeypatch.setattr(rays, "_PAIRWISE_LIMIT", pairwise_limit)
    rng = np.random.default_rng(3)
    cells = rng.uniform(0, 200, (400, 2))
    radius = rng.uniform(2, 8, 400)
    groups = np.full(400, -1)
    leaders = []
    for i in range(400):
        for g, j in enumerate(leaders):
            if np.hypot(*(cells[i] - cells[j])) < 0.5 * min(radius[i], radius[j]):
                groups[i] = g
                break
        else:
            groups[i] = len(leaders)
            leaders.append(i)
    assert np.array_equal(group_prompts(cells, radius), groups)
    assert groups.max() + 1 < 400  # the case has merges


def test_instance_similarity_is_each_masks_median(scene):
    rng = np.random.default_rng(5)
    similarity = rng.uniform(-1, 1, scene.labels.shape).astype(np.float32)
    instances = []
    for k in range(1, 40):
        ys, xs = np.nonzero(scene.labels == k)
        if len(xs) == 0:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        mask = scene.labels[box[1] : box[3], box[0] : box[2]] == k
        instances.append(Instance(len(instances), 1.0, box, mask))
    got = instance_similarity(instances, similarity)
    # On every other pixel each way (the map is a resampled feature grid), the median of the mask's values.
    want = [
        np.median(similarity[i.bbox[1] : i.bbox[3] : 2, i.bbox[0] : i.bbox[2] : 2][i.mask[::2, ::2]])
        for i in instances
    ]
    assert np.allclose(got, want, atol=1e-6)


def test_encoder_reuses_a_feature_buffer_only_when_nobody_holds_it(scene):
    encoder = EmbeddedImageEncoder()
    first = encoder.encode(scene.image)
    kept = first.features.copy()
    view = first.features[:, 1:]
    del first
    second = encoder.encode(scene.image[::-1].copy())
    # The first frame's features are still referenced through `view`: untouched.
    assert np.array_equal(view, kept[:, 1:])
    assert not np.shares_memory(view, second.features)
    del view, second
    third = encoder.encode(scene.image)
    assert np.array_equal(third.features, kept)
    assert np.array_equal(third.features, embed(compute_descriptors(scene.image)))
    buffers = {id(b) for b in encoder._buffers}
    fourth = encoder.encode(scene.image)
    assert len(encoder._buffers) <= 2 and {id(b) for b in encoder._buffers} <= buffers | {id(fourth.features)}


@pytest.mark.parametrize("n, k", [(16, 4), (16, 0), (16, 15), (8, 3), (4, 1)])
def test_the_selection_network_gives_numpys_order_statistic(n, k):
    rng = np.random.default_rng(n * 100 + k)
    values = rng.normal(size=(n, 37, 41)).astype(np.float32)
    values[:, :5] = np.round(values[:, :5])  # ties
    want = np.partition(values, k, axis=0)[k]
    assert np.array_equal(order_statistic(list(values.copy()), k), want)


@pytest.mark.parametrize("rays, percentile", [(32, 30.0), (32, 0.0), (32, 100.0), (7, 50.0)])
def test_percentile_over_rays_is_numpys(rays, percentile):
    profiles = np.random.default_rng(rays).random((5, rays, 9)).astype(np.float32)
    want = np.percentile(profiles, percentile, axis=1)
    assert np.allclose(_percentile_over_rays(profiles, percentile), want, atol=1e-6)


@pytest.mark.parametrize("shape", [(1000, 169), (59, 32), (7,), (8,), (3, 4, 5), (1,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_medians_equal_numpys_median(shape, dtype):
    values = np.random.default_rng(sum(shape)).normal(size=shape).astype(dtype)
    values.flat[::3] = np.round(values.flat[::3])  # ties
    assert np.array_equal(row_medians(values), np.median(values, axis=-1))


@pytest.mark.parametrize("radius", [3.0, 12.3])
def test_rim_strength_at_cells_is_the_maps(desc, radius):
    """The rim field looked up at cells (banded map and gathered lookups) gives the whole map's values."""
    field = RimField(*radial_gradients(desc.data), radius)
    strength = field.strength()
    h, w = strength.shape
    rng = np.random.default_rng(1)
    cells = np.column_stack([rng.integers(0, w, 300), rng.integers(0, h, 300)])
    assert np.array_equal(field.at(cells), strength[cells[:, 1], cells[:, 0]])


def test_close_candidate_suppression_is_the_same_pairwise_or_row_by_row(monkeypatch):
    import engines.embedded.rims as rims

    rng = np.random.default_rng(5)
    points, radii, scores = rng.random((400, 2)) * 60, rng.random(400) * 3 + 1, rng.random(400)
    pairwise = rims.suppress_close(points, radii, scores)
    monkeypatch.setattr(rims, "_PAIRWISE_LIMIT", 0)
    row_by_row = rims.suppress_close(points, radii, scores)
    assert np.array_equal(pairwise, row_by_row) and 0 < pairwise.sum() < len(points)
    # The greedy rule itself: no two kept points are too close, and every dropped one has a better kept neighbour.
    kept = np.flatnonzero(pairwise)
    d = np.hypot(*(points[kept, None] - points[None, kept]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert (d >= 0.6 * np.maximum(radii[kept, None], radii[None, kept])).all()
