"""Several products share one frame's work (issue 28's cost): the frame's filter planes are computed once per grid
step for every any-shape product, and each product's pipeline sees the frame as if it were alone (the engines'
per-support state does not leak from one product to the next). Results are exactly those of a product alone."""

from __future__ import annotations

import numpy as np

from engines.anyshape.classifier import PixelClassifier
from engines.anyshape.filters import N_PLANES, PLANE_NAMES, filter_bank
from streamer.config import EnginesConfig
from streamer.engine_factory import build_engines
from streamer.persense.products import Products
from streamer.simulator.mix import MixedConveyor


GRADIENTS = [PLANE_NAMES.index(f"gradient s{k}") for k in range(3)]


def _same_instances(a, b) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.bbox == y.bbox and x.score == y.score and np.array_equal(x.mask, y.mask)


def test_a_filter_bank_with_another_supports_planes_is_the_bank_computed_alone():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    tile, soap = (0.7, 1.54, 3.08), (0.7, 1.89, 3.78)  # the products mix's tile and soap (one grid step)
    memo: dict = {}
    with_tile = filter_bank(image, tile, memo)
    planes_after_one = len(memo)
    with_soap = filter_bank(image, soap, memo)
    for shared, alone in ((with_tile, filter_bank(image, tile)), (with_soap, filter_bank(image, soap))):
        exact = [k for k in range(N_PLANES) if k not in GRADIENTS]
        assert np.array_equal(shared[exact], alone[exact])
        # cv2.magnitude rounds by where its output lies in memory (OpenCV 5.1: one result in two differs by an
        # ulp, with or without the memo): the gradient planes agree to that.
        assert np.allclose(shared[GRADIENTS], alone[GRADIENTS], rtol=1e-6, atol=1e-5)
    # The planes of the shared finest scale (and the colour planes) were taken, not computed again.
    assert len(memo) - planes_after_one < planes_after_one
    assert memo[("blur", "lightness", 0.7)] is memo[("blur", "lightness", 0.7)]


def test_one_product_gives_exactly_what_it_gave_before_the_shared_planes(monkeypatch):
    """Before: every support computed its bank alone (PixelClassifier.bank without a memo)."""
    mix, examples = MixedConveyor(seed=0), MixedConveyor(seed=1)
    engines = build_engines(EnginesConfig())
    product = Products(engines, default_name="tile")
    product.set_support(*examples.support("tile"))
    image = mix.frame(0).image
    after = product.segment(image)
    bank = PixelClassifier.bank
    monkeypatch.setattr(PixelClassifier, "bank", lambda self, image_rgb, memo=None: bank(self, image_rgb))
    before = product.segment(image)
    _same_instances(after.instances, before.instances)
    assert after.density_count == before.density_count and after.match_quality == before.match_quality


def test_each_product_of_a_camera_finds_exactly_what_it_finds_alone():
    """A round product listed after an any-shape one (two engine routes over one frame's work) once took the
    any-shape product's regions for its own and counted the tiles; and two any-shape products share planes."""
    mix, examples = MixedConveyor(seed=0), MixedConveyor(seed=1)
    engines = build_engines(EnginesConfig())
    names = ["tile", "biscuit", "soap"]
    camera = Products(engines, default_name=names[0])
    camera.set_support(*examples.support(names[0]))
    for name in names[1:]:
        camera.add(name, *examples.support(name))
    camera.claims = False  # each product's own finds, before the claim rule
    image = mix.frame(0).image
    together = camera.segment(image)
    for name in names:
        alone = Products(engines, default_name=name)
        alone.set_support(*examples.support(name))
        own = [inst for inst in together.instances if inst.product == name]
        _same_instances(own, alone.segment(image).instances)
