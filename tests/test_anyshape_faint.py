"""A faint product (about as light as its belt, each item with its own grain): the pixel classifier reads its
light and colour, not its texture (engines/anyshape/classifier.py, _FAINT)."""

from __future__ import annotations

import numpy as np

from engines.anyshape.classifier import ALL_PLANES, LOOK_PLANES, fit_classifier, object_contrast
from engines.embedded import build_embedded_engines
from streamer.devset.categories import category_cases
from streamer.metrics_eval import evaluate
from streamer.persense import PerSense


def _slab(step: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A grainy grey belt with one square slab `step` lightness levels (0-255) above it -> image, mask."""
    rng = np.random.default_rng(seed)
    image = np.clip(120 + rng.normal(0, 6, (120, 120, 1)), 0, 255).repeat(3, axis=2)
    mask = np.zeros((120, 120), bool)
    mask[40:80, 40:80] = True
    image[mask] += step
    return np.clip(image, 0, 255).astype(np.uint8), mask


def test_a_faint_support_is_learnt_from_its_look_planes_a_clear_one_from_all():
    faint_image, faint_mask = _slab(6.0)
    clear_image, clear_mask = _slab(60.0)
    assert object_contrast(faint_image, faint_mask) < object_contrast(clear_image, clear_mask)
    assert fit_classifier(faint_image, faint_mask, 3, (0.7, 3.0, 6.0)).planes == LOOK_PLANES
    assert fit_classifier(clear_image, clear_mask, 3, (0.7, 3.0, 6.0)).planes == ALL_PLANES
    assert len(LOOK_PLANES) < len(ALL_PLANES)


def test_faint_slabs_on_a_texture_in_other_light_are_found():
    case = next(c for c in category_cases("development", ("low contrast",)) if c.kind == "cross-image")
    persense = PerSense(build_embedded_engines())
    persense.set_support(case.support_image, case.support_mask)
    # Learnt from every plane, the support's own grain: 1 of 30 counted (F1 0.065).
    assert evaluate(persense.segment(case.image), case.labels).f1 >= 0.6
