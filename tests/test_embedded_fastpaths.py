"""The embedded engines' fast paths give the answers of the straightforward code they replace.

Each test keeps the plain version (as it was written first) as the reference and compares on real maps from
the simulator, so a speed-up that changes an answer fails here, not only in the quality figures.
"""

import cv2
import numpy as np
import pytest

from engines.embedded.appearance import Gaussian, fit_rest, foreground, row_median
from engines.embedded.encoder import EmbeddedImageEncoder
from engines.embedded.features import DESCRIPTOR_FLOOR, compute_descriptors, embed, thin
from engines.embedded.objects import (
    _MERGE_RADII,
    _SADDLE_RATIO,
    close_pairs,
    fill_small_holes,
    find_centres,
    object_map,
    unreached_centres,
    valley_strength,
)
from streamer.simulator import render_scene


@pytest.fixture(scope="module")
def scene():
    return render_scene(n_objects=60, n_distractors=8, seed=7)


@pytest.fixture(scope="module")
def desc(scene):
    return compute_descriptors(scene.image)


@pytest.fixture(scope="module")
def fg(scene, desc):
    # Reference cells: the middle of a few targets, on the working grid.
    ys, xs = np.nonzero(scene.labels[::2, ::2] > 0)
    ref = np.zeros(desc.grid_hw, bool)
    ref[ys[::50], xs[::50]] = True
    return foreground(desc.smoothed(0.8), ref)


def _holes_reference(mask, max_area):
    inv = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = mask.shape
    x, y, bw, bh, area = (stats[:, k] for k in range(5))
    touches = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    small = (area <= max_area) & ~touches
    small[0] = False
    return mask | small[labels]


def test_fill_small_holes_matches_labelling_every_component(fg):
    rng = np.random.default_rng(0)
    masks = [fg.prob > 0.5, rng.random((40, 50)) > 0.3, np.ones((5, 6), bool), np.zeros((5, 6), bool)]
    # A hole touching the border only diagonally-adjacent cells of: still a hole (4-connectivity).
    ring = np.ones((7, 7), bool)
    ring[3, 3] = False
    ring[0, 2] = False
    masks.append(ring)
    for mask in masks:
        for max_area in (0, 1, 5, 60, 10_000):
            assert np.array_equal(fill_small_holes(mask, max_area), _holes_reference(mask, max_area))


def _unreached_reference(objects, prompts):
    centres = find_centres(objects)[:, :2]
    if len(centres) == 0 or len(prompts) == 0:
        return centres
    d = np.hypot(centres[:, None, 0] - prompts[None, :, 0], centres[:, None, 1] - prompts[None, :, 1])
    r, dist = objects.radius, objects.distance
    h, w = dist.shape
    keep = np.ones(len(centres), bool)
    for k in range(len(centres)):
        near = np.flatnonzero(d[k] < _MERGE_RADII * r)
        if np.any(d[k, near] < 0.5 * r):
            keep[k] = False
            continue
        for j in near:
            t = np.linspace(0.0, 1.0, 9)
            px = prompts[j][0] + t * (centres[k][0] - prompts[j][0])
            py = prompts[j][1] + t * (centres[k][1] - prompts[j][1])
            along = dist[np.clip(np.rint(py).astype(int), 0, h - 1), np.clip(np.rint(px).astype(int), 0, w - 1)]
            if along[1:-1].min() >= _SADDLE_RATIO * min(along[0], along[-1]):
                keep[k] = False
    return centres[keep]


def test_unreached_centres_matches_the_pairwise_loop(desc, fg):
    objects = object_map(fg.prob, desc.data[0], 12.0, 0.05)
    centres = find_centres(objects)[:, :2].astype(np.float64)
    assert len(centres) > 20
    rng = np.random.default_rng(1)
    for prompts in (centres[::2], centres[::3] + rng.normal(0, 4, (len(centres[::3]), 2)), centres[:0]):
        got = unreached_centres(objects, prompts)
        want = _unreached_reference(objects, prompts)
        assert np.array_equal(got, want)
    # Prompts on every other object leave the rest unreached.
    assert 0 < len(unreached_centres(objects, centres[::2])) < len(centres)


def test_shared_valley_map_gives_the_same_object_map(desc, fg):
    intensity = desc.data[0]
    a = object_map(fg.prob, intensity, 12.0, 0.05)
    b = object_map(fg.prob, intensity, 12.0, 0.05, valley_strength(intensity, 12.0))
    assert np.array_equal(a.cores, b.cores) and np.array_equal(a.distance, b.distance)


def test_descriptor_cache_computes_once(desc):
    calls = []
    first = desc.cached(("test", 1), lambda: calls.append(1) or np.arange(3))
    again = desc.cached(("test", 1), lambda: calls.append(1) or np.arange(4))
    assert first is again and len(calls) == 1


def _fit_rest_reference(samples, scale):
    samples = thin(samples, 1200)
    z = samples / scale[:, None]
    order = np.argsort(z[0], kind="stable")
    k = min(3, z.shape[1])
    centres = z[:, order[np.linspace(0, z.shape[1] - 1, k).astype(int)]]
    for _ in range(3):
        assign = np.argmin(((z[:, :, None] - centres[:, None, :]) ** 2).sum(axis=0), axis=1)
        for c in range(k):
            if np.any(assign == c):
                centres[:, c] = z[:, assign == c].mean(axis=1)
    out = []
    for c in range(k):
        members = samples[:, assign == c]
        if members.shape[1] >= 8:
            med = np.median(members, axis=1)
            out.append((med, np.median(np.abs(members - med[:, None]), axis=1)))
    return out


def test_fit_rest_and_medians_match_numpy(desc, fg):
    far = fg.target.distance(desc.data) > 4.5
    samples = desc.data[:, far][:, ::7]
    got = fit_rest(samples, fg.target.std)
    want = _fit_rest_reference(samples, fg.target.std)
    assert len(got) == len(want) >= 2
    for component, (med, mad) in zip(got, want):
        assert np.allclose(component.mean, med, rtol=1e-5, atol=1e-5)
        assert np.allclose(component.std, np.maximum(mad * 1.4826, DESCRIPTOR_FLOOR), rtol=1e-4, atol=1e-6)
    for m in (1, 2, 7, 8):
        values = np.random.default_rng(m).normal(size=(4, m)).astype(np.float32)
        assert np.allclose(row_median(values), np.median(values, axis=1))


def test_squared_distance_matches_the_definition(desc, fg):
    g = Gaussian(fg.target.mean, fg.target.std)
    want = (((desc.data - g.mean[:, None, None]) / g.std[:, None, None]) ** 2).sum(axis=0)
    assert np.allclose(g.squared_distance(desc.data), want, rtol=1e-5, atol=1e-4)


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


def test_close_pairs_match_the_distance_matrix():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 50, (300, 2))
    b = rng.uniform(0, 50, (120, 2)).astype(np.float32)
    # Exact ties at the radius must stay out, as with `d < radius` on the full matrix.
    a[1] = a[0] + [3.0, 4.0]
    for other, radius in ((a, 5.0), (b, 4.0), (b[:0], 4.0)):
        d = np.hypot(a[:, None, 0] - other[None, :, 0], a[:, None, 1] - other[None, :, 1])
        near = d < radius
        if other is a:
            near = np.triu(near, 1)
        want = np.argwhere(near)
        i, j, dist = close_pairs(a, other, radius)
        assert np.array_equal(np.column_stack([i, j]).reshape(-1, 2), want)
        assert np.array_equal(dist, d[want[:, 0], want[:, 1]])
