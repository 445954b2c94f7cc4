"""CounTR pre-processing and sliding-window stitching (numpy only, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.countr import preprocess as pre
from engines.countr.windows import (
    assemble,
    density_to_frame,
    make_windows,
    pad_width,
    split_windows,
    stitch,
    window_offsets,
)


def blobs(height: int, width: int, centres: list[tuple[float, float]], sigma: float = 4.0) -> np.ndarray:
    """float32[height, width]: one unit-mass Gaussian per (x, y) centre."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.zeros((height, width))
    for cx, cy in centres:
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        out += g / g.sum()
    return out.astype(np.float32)


@pytest.mark.parametrize(
    "width, expected",
    [(384, [0]), (512, [0, 128]), (640, [0, 128, 256]), (1152, [0, 128, 256, 384, 512, 640, 768]),
     (528, [0, 128, 144]), (400, [0, 16])],
)
def test_window_offsets_cover_and_end_flush_right(width, expected):
    offsets = window_offsets(width)
    assert offsets == expected
    assert offsets[-1] + 384 == width


def test_model_width_follows_countr_evaluation():
    assert pre.model_width((480, 640)) == 512
    assert pre.model_width((384, 384)) == 384
    assert pre.model_width((100, 300)) == 1152
    assert pre.model_width((1000, 1001)) == 384
    assert pre.model_width((5000, 10)) == 16  # never zero columns


def test_stitching_known_blobs_equals_each_window_where_they_overlap():
    width = 1152  # seven windows
    truth = blobs(384, width, [(30, 40), (200, 200), (383, 100), (500, 300), (700, 50), (1100, 370)])
    offsets = window_offsets(width)
    windows = split_windows(truth[None], offsets)[:, 0]
    stitched = stitch(windows, offsets, width)
    np.testing.assert_allclose(stitched, truth, rtol=0, atol=1e-7)
    for window, o in zip(windows, offsets):
        np.testing.assert_allclose(stitched[:, o : o + 384], window, rtol=0, atol=1e-7)
    assert abs(stitched.sum() - 6.0) < 1e-3


def test_stitching_averages_disagreeing_windows_in_the_overlap():
    offsets = window_offsets(512)  # [0, 128]: columns 128..383 are covered twice
    windows = np.stack([np.full((384, 384), 1.0), np.full((384, 384), 3.0)]).astype(np.float32)
    stitched = stitch(windows, offsets, 512)
    assert np.all(stitched[:, :128] == 1.0)
    assert np.all(stitched[:, 128:384] == 2.0)
    assert np.all(stitched[:, 384:] == 3.0)


def test_narrow_images_are_padded_symmetrically_and_unpadded_after():
    image = np.ones((3, 384, 100), np.float32)
    padded, left = pad_width(image)
    assert padded.shape == (3, 384, 384) and left == 142
    assert padded[:, :, :142].sum() == 0 and padded[:, :, 242:].sum() == 0
    windows, layout = make_windows(image, 1, 100)
    assert windows.shape == (1, 3, 384, 384) and layout.pad_left == 142
    density = blobs(384, 384, [(150, 100), (300, 300)])
    out = assemble(density[None], layout)
    np.testing.assert_array_equal(out, density[:, 142:242])


def test_tiled_layout_round_trips_a_density_made_of_blobs():
    tile_width = 512
    full = blobs(3 * 384, 3 * tile_width, [(x, y) for x in range(40, 1536, 150) for y in range(30, 1152, 170)])
    image = np.zeros((3, 3 * 384, 3 * tile_width), np.float32)
    windows, layout = make_windows(image, 3, tile_width)
    assert layout.num_windows == 9 * 2 and windows.shape == (18, 3, 384, 384)
    # The density each window would report if the model were exact: the truth under the window.
    per_window = []
    for row in range(3):
        for col in range(3):
            tile = full[row * 384 : (row + 1) * 384, col * tile_width : (col + 1) * tile_width]
            per_window.extend(tile[:, o : o + 384] for o in layout.offsets)
    np.testing.assert_allclose(assemble(np.stack(per_window), layout), full, atol=1e-7)


def test_make_windows_cuts_the_image_where_assemble_puts_it_back():
    rng = np.random.default_rng(0)
    image = rng.random((3, 384 * 3, 400 * 3), dtype=np.float32)
    windows, layout = make_windows(image, 3, 400)
    np.testing.assert_array_equal(assemble(windows[:, 1], layout), image[1])


def test_density_to_frame_preserves_the_count_and_clips_negatives():
    density = blobs(384, 512, [(100, 100), (300, 200), (450, 350)]) * 60 - 1e-4
    for frame_hw in [(480, 640), (120, 160), (384, 512), (1080, 1920)]:
        out = density_to_frame(density, frame_hw, total=3.0)
        assert out.shape == frame_hw and out.dtype == np.float32
        assert out.min() >= 0
        assert abs(float(out.sum(dtype=np.float64)) - 3.0) < 1e-4
    assert not density_to_frame(density, (480, 640), total=0.0).any()
    assert not density_to_frame(-np.ones((384, 384), np.float32), (100, 100), total=2.0).any()


def test_clip_boxes_clips_and_drops_bad_boxes():
    boxes = np.array(
        [
            [10, 10, 20, 30],  # fine
            [-50, -5, 5, 8],  # partly outside: clipped
            [700, 10, 800, 20],  # right of the frame: empty after clipping
            [30, 30, 30, 40],  # zero width
            [40, 40, 35, 50],  # inverted
            [np.nan, 0, 5, 5],  # not finite
        ],
        np.float32,
    )
    out = pre.clip_boxes(boxes, (480, 640))
    np.testing.assert_array_equal(out, [[10, 10, 20, 30], [0, 0, 5, 8]])
    assert pre.clip_boxes(np.zeros((0, 4)), (10, 10)).shape == (0, 4)


def test_exemplar_groups_use_every_exemplar_in_sets_of_at_most_three():
    crops = np.arange(5, dtype=np.float32)[:, None, None, None] * np.ones((1, 3, 64, 64), np.float32)
    ids = lambda groups: groups[:, :, 0, 0, 0].astype(int).tolist()  # noqa: E731
    assert ids(pre.exemplar_groups(crops[:1])) == [[0]]
    assert ids(pre.exemplar_groups(crops[:2])) == [[0, 1]]
    assert ids(pre.exemplar_groups(crops[:3])) == [[0, 1, 2]]
    assert ids(pre.exemplar_groups(crops[:4])) == [[0, 1, 2], [3, 0, 1]]
    assert ids(pre.exemplar_groups(crops)) == [[0, 1, 2], [3, 4, 0]]


def test_crop_exemplars_cuts_the_box_and_resizes_to_64():
    image = np.zeros((384, 512, 3), np.uint8)
    image[100:120, 200:240] = (255, 0, 0)
    crops = pre.crop_exemplars(image, np.array([[200, 100, 240, 120], [0.2, 0.2, 0.4, 0.4], [511.5, 383.5, 512, 384]],
                                               np.float32))
    assert crops.shape == (3, 3, 64, 64) and crops.dtype == np.float32
    assert np.allclose(crops[0, 0], 1.0) and np.allclose(crops[0, 1:], 0.0)
    assert crops.max() <= 1.0 and crops.min() >= 0.0


def test_all_tiny_needs_every_exemplar_small_on_both_sides():
    assert pre.all_tiny(np.array([[0, 0, 9, 9], [5, 5, 15, 14.9]], np.float32)) is False
    assert pre.all_tiny(np.array([[0, 0, 9, 9], [5, 5, 14.9, 14.9]], np.float32)) is True
    assert pre.all_tiny(np.array([[0, 0, 9, 30]], np.float32)) is False
    assert pre.all_tiny(np.zeros((0, 4), np.float32)) is False
