"""Match quality: the support calibrates its own scale; instances are scored on it."""

import numpy as np

import pytest

from streamer.persense.presence import MatchCalibration, calibrate, frame_quality, instance_similarity
from streamer.types import Instance


def test_calibration_takes_the_object_median_and_the_images_low_percentile():
    grid = np.linspace(0.0, 1.0, 100, dtype=np.float32).reshape(10, 10)
    mask = np.zeros((40, 40), bool)
    mask[32:, 32:] = True  # the grid's bottom-right 2 x 2 cells: 88, 89, 98 and 99 / 99
    cal = calibrate(grid, mask)
    assert abs(cal.self_similarity - 93.5 / 99) < 1e-6
    assert abs(cal.floor - np.percentile(grid, 5)) < 1e-6
    assert abs(float(cal.quality(cal.self_similarity)) - 1.0) < 1e-9
    assert abs(float(cal.quality(cal.floor))) < 1e-9


def test_instance_similarity_is_the_median_over_the_mask_only():
    sim = np.zeros((20, 20), np.float32)
    sim[5:10, 5:10] = 1.0
    mask = np.zeros((10, 10), bool)
    mask[:5, :5] = True  # exactly the 1.0 square
    inst = Instance(0, 1.0, (5, 5, 15, 15), mask)
    assert instance_similarity([inst], sim).tolist() == [1.0]
    # A mask that takes in a rim of background (0.0) is still judged by the object's majority.
    mask[:6, :6] = True
    assert instance_similarity([inst], sim).tolist() == [1.0]
    assert frame_quality(np.array([0.2, 0.9, 1.0])) == 0.9
    assert frame_quality(np.array([])) == 0.0


def test_quality_is_not_clipped_and_is_linear():
    cal = MatchCalibration(0.9, 0.5)
    assert np.allclose(cal.quality(np.array([0.3, 0.7, 1.1])), [-0.5, 0.5, 1.5])


def test_support_problems_are_named_and_a_speck_is_refused():
    import pytest

    from streamer.errors import UserError
    from streamer.persense.support_checks import size_mismatch, support_problems

    rng = np.random.default_rng(0)
    image = rng.integers(0, 120, (100, 100, 3), dtype=np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    image[mask] = 230  # an object that stands out of the noise
    assert support_problems(image, mask) == []
    edge = np.zeros_like(mask)
    edge[0:20, 40:60] = True
    assert any("border" in p for p in support_problems(image, edge))
    flat = np.full_like(image, 128)
    assert any("uniform" in p for p in support_problems(flat, mask))
    small = np.zeros_like(mask)
    small[50:55, 50:55] = True
    assert any("25 pixels" in p for p in support_problems(image, small))
    speck = np.zeros_like(mask)
    speck[50, 50:53] = True
    with pytest.raises(UserError, match="3 pixel"):
        support_problems(image, speck)
    assert size_mismatch((100, 100), (120, 90)) is None
    assert size_mismatch((100, 100), (640, 480)) is None  # a crop of a frame is the normal support
    assert "12.0x" in size_mismatch((50, 50), (600, 600))
    assert "2.0x" in size_mismatch((1000, 1000), (500, 500))


def test_instance_similarity_medians_of_many_instances_at_once():
    rng = np.random.default_rng(5)
    sim = rng.uniform(-1, 1, (40, 40)).astype(np.float32)
    instances = []
    for k, (x0, y0, w, h) in enumerate([(0, 0, 9, 7), (10, 3, 6, 6), (20, 20, 15, 11), (5, 30, 2, 2), (30, 0, 1, 1)]):
        mask = rng.random((h, w)) < 0.7
        mask[0, 0] = True
        instances.append(Instance(k, 1.0, (x0, y0, x0 + w, y0 + h), mask))
    got = instance_similarity(instances, sim)
    # The reference: each instance alone, every other pixel each way, the plain median.
    want = [np.median(sim[i.bbox[1] : i.bbox[3] : 2, i.bbox[0] : i.bbox[2] : 2][i.mask[::2, ::2]]) for i in instances]
    assert np.allclose(got, want, atol=1e-6)
    assert instance_similarity([], sim).shape == (0,)
    # A mask with no pixel on the sampling grid is judged by its crop; an empty crop by 0.
    odd = np.zeros((2, 2), bool)
    odd[1, 1] = True
    assert instance_similarity([Instance(0, 1.0, (2, 2, 4, 4), odd)], sim).tolist() == [float(np.median(sim[2:4:2, 2:4:2]))]
    assert instance_similarity([Instance(0, 1.0, (2, 2, 2, 2), np.zeros((0, 0), bool))], sim).tolist() == [0.0]


def test_calibration_of_a_small_object_uses_the_cells_it_covers_most():
    grid = np.arange(16, dtype=np.float32).reshape(4, 4) / 15
    mask = np.zeros((16, 16), bool)
    mask[4:7, 4:8] = True  # 0.75 of cell (1, 1) = 5 / 15
    mask[4:5, 8:12] = mask[5:6, 8:11] = True  # 0.44 of cell (1, 2) = 6 / 15: left out
    assert abs(calibrate(grid, mask).self_similarity - 5 / 15) < 1e-6
    speck = np.zeros((16, 16), bool)
    speck[5:7, 5:7] = True  # 0.25 of cell (1, 1): the best there is, so it counts
    speck[9, 9] = True  # 1/16 of cell (2, 2): below half of the best
    assert abs(calibrate(grid, speck).self_similarity - 5 / 15) < 1e-6
    # The floor stays below the object's level even for an image that is the object.
    flat = calibrate(np.full((4, 4), 0.7, np.float32), np.ones((16, 16), bool))
    assert flat.self_similarity == pytest.approx(0.7) and flat.floor == pytest.approx(0.7 - 1e-3)


def test_a_support_whose_outline_does_not_stand_out_is_named():
    """A disc drawn faintly on random texture (as dark coins on gravel, which then found gravel) is warned of;
    the same disc with a clear outline is not."""
    import cv2

    from streamer.persense.support_checks import support_problems

    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.uniform(60, 190, (160, 160)).astype(np.float32), (0, 0), 1.5)
    mask = np.zeros((160, 160), np.uint8)
    cv2.circle(mask, (80, 80), 20, 1, -1)
    for step, weak in ((4.0, True), (70.0, False)):
        grey = texture + step * mask
        image = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        problems = support_problems(image, mask.astype(bool))
        assert any("outline" in p for p in problems) == weak, (step, problems)
