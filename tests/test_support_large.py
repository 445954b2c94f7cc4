"""Large supports cost bounded memory and time (issue 24): the checks and the profile work on the object's
neighbourhood at a reduced size, with the same verdicts as at full size."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np

from streamer.persense.scale_check import support_profile
from streamer.persense.support_checks import support_problems


def _disc(size: int, radius: int, textured_background: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = np.full((size, size, 3), 60, np.uint8)
    if textured_background:
        image[:] = rng.integers(0, 256, (size, size, 1), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), radius, 1, -1)
    if not textured_background:
        image[mask.astype(bool)] = 200
    return image, mask.astype(bool)


def _weak(problems: list[str]) -> bool:
    return any("hardly stronger" in p for p in problems)


def test_a_large_object_is_checked_like_a_small_one():
    for radius in (60, 600):  # below and far beyond the reduced check's radius
        clear, clear_mask = _disc(4 * radius, radius, textured_background=False)
        assert not _weak(support_problems(clear, clear_mask)), radius
        noisy, noisy_mask = _disc(4 * radius, radius, textured_background=True)
        assert _weak(support_problems(noisy, noisy_mask)), radius


def test_a_large_objects_profile_is_sampled_and_close_to_the_full_one():
    image, mask = _disc(3000, 1000, textured_background=False)
    image = cv2.GaussianBlur(image, (0, 0), 20)  # a soft edge: the profile has a slope to follow
    tracemalloc.start()
    sampled = support_profile(image, mask)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 80 * 1024 * 1024, peak  # at every pixel: index arrays of hundreds of MB
    assert len(sampled.profile) == int(np.ceil(1.3 * sampled.radius)) + 1
    assert abs(sampled.profile[0] - 200) < 2 and abs(sampled.profile[-1] - 60) < 2
    edge = int(sampled.radius)
    assert 100 < sampled.profile[edge] < 160  # the middle of the blurred edge, where it is
