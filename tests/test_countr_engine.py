"""CountrDMG: windows, exemplar handling and frame mapping, on a fake backend whose output is known (fast)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.countr import preprocess as pre
from engines.countr.engine import CountrDMG
from engines.interfaces import DensityMapGenerator, ImageEmbedding
from streamer.errors import UserError


class PointwiseBackend:
    """density[g, b] = red channel of window b x the mean of exemplar group g: a known function of the inputs,
    so the stitched map must equal that function applied to the whole model-scale image."""

    def __init__(self, max_windows: int = 8, max_groups: int = 4):
        self.max_windows = max_windows
        self.max_groups = max_groups
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.exemplars: list[np.ndarray] = []

    def __call__(self, windows: np.ndarray, exemplars: np.ndarray) -> np.ndarray:
        assert windows.dtype == np.float32 and exemplars.dtype == np.float32
        assert windows.shape[1:] == (3, 384, 384) and exemplars.shape[2:] == (3, 64, 64)
        self.calls.append((windows.shape, exemplars.shape))
        self.exemplars.append(exemplars.copy())
        weight = exemplars.reshape(exemplars.shape[0], -1).mean(axis=1)
        return (weight[:, None, None, None] * windows[None, :, 0]).astype(np.float32)


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def expected_model_density(image: np.ndarray, tiles: int = 1) -> np.ndarray:
    """The red channel at model scale, times the mean of the (all-white) exemplars = 1."""
    h, w = image.shape[:2]
    scaled = pre.resize_rgb(image, (384 * tiles, pre.model_width((h, w)) * tiles))
    return pre.to_chw_float(scaled)[0]


def white_boxes(image: np.ndarray, boxes: list[list[float]]) -> np.ndarray:
    """Paint the boxes white, with a margin against resampling, so that every exemplar crop has mean 1
    (the fake backend's weight)."""
    for x0, y0, x1, y1 in boxes:
        r0, c0 = max(int(np.floor(y0)) - 3, 0), max(int(np.floor(x0)) - 3, 0)
        image[r0 : int(np.ceil(y1)) + 3, c0 : int(np.ceil(x1)) + 3] = 255
    return np.asarray(boxes, np.float32)


def test_implements_the_dmg_interface():
    assert isinstance(CountrDMG(PointwiseBackend()), DensityMapGenerator)


@pytest.mark.parametrize("frame_hw, windows", [((96, 96), 1), ((96, 160), 3), ((64, 192), 7), ((200, 50), 1)])
def test_stitched_density_equals_the_pointwise_map_of_the_whole_image(frame_hw, windows):
    image = frame(*frame_hw)
    boxes = white_boxes(image, [[10, 10, 30, 30]])
    backend = PointwiseBackend()
    result = CountrDMG(backend).model_density(image, boxes)
    assert result.layout.num_windows == windows
    np.testing.assert_allclose(result.density, expected_model_density(image), atol=2e-6)


def test_frame_density_sums_to_count_which_is_raw_sum_over_60():
    image = frame(480, 640)
    boxes = white_boxes(image, [[100, 100, 140, 150]])
    dmg = CountrDMG(PointwiseBackend())
    out = dmg.density(image, None, boxes)
    raw = expected_model_density(image)
    assert out.density.shape == (480, 640) and out.density.dtype == np.float32
    assert out.count == pytest.approx(raw.sum(dtype=np.float64) / 60, rel=1e-5)
    assert float(out.density.sum(dtype=np.float64)) == pytest.approx(out.count, rel=1e-5)
    assert out.density.min() >= 0


def test_embedding_is_ignored():
    image = frame(120, 160)
    boxes = white_boxes(image, [[10, 10, 40, 40]])
    embedding = ImageEmbedding(np.ones((8, 4, 4), np.float32), (120, 160), (4, 4))
    a = CountrDMG(PointwiseBackend()).density(image, None, boxes)
    b = CountrDMG(PointwiseBackend()).density(image, embedding, boxes)
    np.testing.assert_array_equal(a.density, b.density)


@pytest.mark.parametrize("m, groups, shots", [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 3), (6, 2, 3), (7, 3, 3)])
def test_exemplar_count_decides_groups_in_one_call(m, groups, shots):
    image = frame(96, 128)
    boxes = white_boxes(image, [[5 + 10 * i, 5, 15 + 10 * i, 20] for i in range(m)])
    backend = PointwiseBackend()
    CountrDMG(backend).density(image, None, boxes)
    assert [ex for _, ex in backend.calls] == [(groups, shots, 3, 64, 64)]


def test_four_exemplars_average_two_groups_of_three():
    image = np.zeros((96, 128, 3), np.uint8)
    boxes = np.array([[5, 5, 20, 20], [35, 5, 50, 20], [65, 5, 80, 20], [95, 5, 110, 20]], np.float32)
    white_boxes(image, [boxes[0], boxes[3]])
    backend = PointwiseBackend()
    out = CountrDMG(backend).model_density(image, boxes)
    groups = backend.exemplars[0]
    # Groups {0, 1, 2} and {3, 0, 1}: crop means 1, 0, 0 and 1, 1, 0.
    np.testing.assert_allclose(groups.mean(axis=(2, 3, 4)), [[1, 0, 0], [1, 1, 0]], atol=1e-6)
    expected = expected_model_density(image) * (1 / 3 + 2 / 3) / 2
    np.testing.assert_allclose(out.density, expected, atol=2e-6)


def test_boxes_outside_or_empty_are_dropped_and_partial_ones_clipped():
    image = frame(96, 128)
    good = white_boxes(image, [[0, 0, 12, 12]])
    bad = np.array([[200, 10, 260, 40], [-30, -30, -1, -1], [50, 50, 50, 70], [np.inf, 0, 1, 1]], np.float32)
    partial = np.array([[-20, -20, 12, 12]], np.float32)  # clipped to the white box
    backend = PointwiseBackend()
    dmg = CountrDMG(backend)
    a = dmg.density(image, None, np.concatenate([bad, good]))
    b = dmg.density(image, None, partial)
    assert [ex[:2] for _, ex in backend.calls] == [(1, 1), (1, 1)]
    np.testing.assert_allclose(a.density, b.density, atol=1e-7)


@pytest.mark.parametrize("boxes", [np.zeros((0, 4)), np.array([[500, 500, 600, 600]]), np.array([[5, 5, 5, 9]])])
def test_no_usable_exemplar_gives_an_empty_density_without_calling_the_model(boxes):
    backend = PointwiseBackend()
    out = CountrDMG(backend).density(frame(60, 80), None, boxes)
    assert out.count == 0.0 and out.density.shape == (60, 80) and not out.density.any()
    assert backend.calls == []


def test_tiny_exemplars_count_on_a_3x3_tiling():
    image = frame(480, 640)
    boxes = white_boxes(image, [[100, 100, 108, 108], [300, 200, 306, 210]])  # < 10 px at model scale (x0.8)
    backend = PointwiseBackend()
    out = CountrDMG(backend).model_density(image, boxes)
    assert out.layout.tiles == 3 and out.layout.num_windows == 9 * 2
    assert out.density.shape == (3 * 384, 3 * 512)
    np.testing.assert_allclose(out.density, expected_model_density(image, tiles=3), atol=2e-6)
    # Exemplar crops are cut at the tiled scale: a white box stays white.
    np.testing.assert_allclose(backend.exemplars[0].min(), 1.0)
    big = white_boxes(frame(480, 640), [[100, 100, 108, 108], [300, 200, 320, 230]])
    assert CountrDMG(PointwiseBackend()).model_density(frame(480, 640), big).layout.tiles == 1


def test_large_requests_are_split_to_the_backend_limits_with_the_same_result():
    image = frame(64, 192)  # seven windows
    boxes = white_boxes(image, [[5 + 12 * i, 5, 15 + 12 * i, 20] for i in range(7)])  # three groups
    small = PointwiseBackend(max_windows=3, max_groups=2)
    big = PointwiseBackend()
    a = CountrDMG(small).density(image, None, boxes)
    b = CountrDMG(big).density(image, None, boxes)
    assert all(w[0] <= 3 and e[0] <= 2 for w, e in small.calls) and len(small.calls) == 6
    np.testing.assert_allclose(a.density, b.density, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                   np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)])
def test_bad_images_are_one_line_user_errors(image):
    with pytest.raises(UserError):
        CountrDMG(PointwiseBackend()).density(image, None, np.array([[0, 0, 5, 5]], np.float32))
