"""Match quality: the support calibrates its own scale; instances are scored on it."""

import numpy as np

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
    image = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
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
