"""The support history keeps what Undo needs at a bounded cost (issue 24, item 4): packed losslessly, within
a byte budget, the support in force always kept."""

from __future__ import annotations

import numpy as np

from streamer.stream.support_history import SupportHistory, pack


def _support(seed: int, h: int = 600, w: int = 800) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noise: the worst case for compression
    mask = np.zeros((h, w), bool)
    mask[100:300, 200:500] = True
    return image, mask


def test_undo_gives_back_the_very_same_pixels():
    history = SupportHistory()
    for seed in range(3):
        image, mask = _support(seed)
        history.push(image, mask, f"s{seed}")
    previous = history.previous()
    image, mask = _support(1)
    assert previous.support_id == "s1"
    assert np.array_equal(previous.image, image) and np.array_equal(previous.mask, mask)
    preview = history.current().packed.preview
    assert max(preview.shape[:2]) == 240 and preview.dtype == np.uint8


def test_the_history_stays_within_its_byte_budget_and_keeps_the_current_one():
    one = pack(*_support(0)).nbytes  # about the raw size for noise: 1.44 MB + mask bits
    history = SupportHistory(depth=8, max_bytes=int(2.5 * one))
    for seed in range(6):
        history.push(*_support(seed), f"s{seed}")
        assert history.nbytes <= 2.5 * one
    assert len(history) == 2 and history.current().support_id == "s5" and history.previous().support_id == "s4"
    tiny = SupportHistory(max_bytes=0)  # no room at all: the support in force is kept anyway, no undo
    tiny.push(*_support(0), "s0")
    tiny.push(*_support(1), "s1")
    assert len(tiny) == 1 and tiny.current().support_id == "s1" and tiny.previous() is None


def test_a_large_plain_support_costs_a_fraction_of_its_pixels():
    image = np.zeros((5000, 8000, 3), np.uint8)  # 40 megapixels: 120 MB of pixels, 40 MB of mask
    image[:, :4000] = 200
    mask = np.zeros((5000, 8000), bool)
    mask[1000:2000, 1000:3000] = True
    packed = pack(image, mask)
    assert packed.nbytes < 8 * 1024 * 1024, packed.nbytes  # the mask's bits (5 MB) and a small PNG
