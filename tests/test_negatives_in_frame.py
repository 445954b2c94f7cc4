"""A negative example judged against the frame's own looks (streamer.persense.negatives.frame_prototypes): an
object between the product's example and the negative's is compared with the frame's objects that surely match
either, so that a product in this frame's light is kept and the look-alikes are still dropped."""

from __future__ import annotations

import numpy as np

from streamer.persense.negatives import SURE_MARGIN, frame_prototypes, matched_elsewhere


def unit(*values: float) -> np.ndarray:
    return np.asarray(values, np.float32) / np.float32(np.linalg.norm(values))


PRODUCT, NEGATIVE = unit(1, 0, 0), unit(0.6, 0.8, 0)  # the two examples' prototypes: cosine 0.6
PROTOTYPES = np.stack([PRODUCT, NEGATIVE])
# This frame's products (their blue is the frame's light, not the example's): the last one lies nearer the
# negative's example than the product's; the look-alikes are near the negative's example.
PRODUCTS = [unit(0.9, 0.3, 0.3), unit(0.85, 0.35, 0.35), unit(0.7, 0.55, 0.45)]
LOOK_ALIKES = [unit(0.55, 0.8, 0.1), unit(0.62, 0.78, 0)]


def dropped(features: np.ndarray) -> list[bool]:
    return matched_elsewhere(features @ frame_prototypes(features, PROTOTYPES, SURE_MARGIN).T).tolist()


def test_a_product_in_the_frames_light_is_kept_and_the_look_alikes_dropped():
    features = np.stack(PRODUCTS + LOOK_ALIKES)
    assert matched_elsewhere(features @ PROTOTYPES.T).tolist() == [False, False, True, True, True]  # the examples'
    assert dropped(features) == [False, False, False, True, True]


def test_a_frame_of_one_kind_keeps_the_examples_judgement_for_the_other():
    assert dropped(np.stack(PRODUCTS[:2])) == [False, False]
    assert dropped(np.stack(LOOK_ALIKES)) == [True, True]
    # Nothing surely anything: the examples' prototypes as they are.
    between = np.stack([unit(0.78, 0.4, 0)])
    assert np.array_equal(frame_prototypes(between, PROTOTYPES, SURE_MARGIN), PROTOTYPES)
    assert frame_prototypes(np.zeros((0, 3), np.float32), PROTOTYPES, SURE_MARGIN) is PROTOTYPES
