"""Several products on one camera and negative examples, in the pipeline layer (streamer.persense.products,
claims, negatives): one product behaves as a lone PerSense; the claim rule; "not this" drops look-alikes on any
engine's features; bad input is refused with one line and changes nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.interfaces import DecoderOutput, DensityOutput, EngineSet, ImageEmbedding
from streamer.config import EnginesConfig, PipelineConfig
from streamer.engine_factory import build_engines
from streamer.errors import UserError
from streamer.persense import PerSense
from streamer.persense.claims import resolve_claims
from streamer.persense.negatives import MAX_NEGATIVES
from streamer.persense.products import Products
from streamer.products_eval import build_products, evaluate_mix
from streamer.simulator import ConveyorSimulator
from streamer.simulator.mix import PRODUCTS_MIX, MixedConveyor
from streamer.types import Instance

H, W = 120, 200
AMBER, BROWN, BLUE = (230, 140, 30), (120, 40, 20), (40, 90, 220)


class ColourEncoder:
    """Features = the pixel's RGB: a prototype is an object's colour (any engine's features would do)."""

    def encode(self, image):
        feats = image.astype(np.float32).transpose(2, 0, 1) / 255.0 + 1e-3
        return ImageEmbedding(feats, image.shape[:2], image.shape[:2])


class EveryBlobDecoder:
    """Each prompt -> the connected blob of non-background pixels under it."""

    def decode_points(self, embedding, points_xy, guidance=None):
        foreground = (embedding.features.sum(axis=0) > 0.6).astype(np.uint8)
        _, blobs = cv2.connectedComponents(foreground)
        labels = np.zeros(embedding.frame_hw, np.int32)
        for i, (x, y) in enumerate(points_xy):
            blob = blobs[int(round(y)), int(round(x))]
            if blob:
                labels[(blobs == blob) & (labels == 0)] = i + 1
        return DecoderOutput(None, np.full((len(points_xy), 1), 0.9, np.float32), embedding.frame_hw, labels=labels)


class EveryBlobDmg:
    """A unit of density at every blob's centre: the engine finds every object, of whatever colour."""

    def density(self, image, embedding, exemplar_boxes):
        foreground = (embedding.features.sum(axis=0) > 0.6).astype(np.uint8)
        n, _, _, centres = cv2.connectedComponentsWithStats(foreground)
        density = np.zeros(embedding.frame_hw, np.float32)
        for x, y in centres[1:]:
            cv2.circle(density, (int(x), int(y)), 3, 1.0, -1)
        return DensityOutput(density / max(density.sum(), 1e-9) * (n - 1), float(n - 1))


def colour_engines() -> EngineSet:
    return EngineSet(ColourEncoder(), EveryBlobDecoder(), EveryBlobDmg(), "colour-test")


def frame(colours) -> np.ndarray:
    """Discs of radius 9 in a row, one per colour, on a dark belt."""
    image = np.full((H, W, 3), 30, np.uint8)
    for k, colour in enumerate(colours):
        cv2.circle(image, (20 + 40 * (k % 5), 30 + 60 * (k // 5)), 9, colour, -1)
    return image


def example(colour) -> tuple[np.ndarray, np.ndarray]:
    image = frame([colour])
    mask = np.zeros((H, W), bool)
    cv2.circle(mask.view(np.uint8), (20, 30), 9, 1, -1)
    return image, mask


def config() -> PipelineConfig:
    # No presence check: a look-alike must be found by the engine for a negative to have something to drop.
    return PipelineConfig(initial_exemplars=1, presence_threshold=None, feedback_iterations=0)


# -- one product is a PerSense --------------------------------------------------------------------------------
def test_one_product_answers_exactly_as_a_lone_pipeline():
    sim = ConveyorSimulator(320, 240, 20, 4, seed=3)
    engines = build_engines(EnginesConfig())
    alone, products = PerSense(engines), Products(engines)
    alone.set_support(*sim.support())
    products.set_support(*sim.support())
    for index in (0, 5):
        image = sim.frame(index).image
        a, b = alone.segment(image), products.segment(image)
        assert a.count == b.count > 0
        assert [i.bbox for i in a.instances] == [i.bbox for i in b.instances]
        assert all(i.product is None for i in b.instances) and b.products == {} and b.label == a.label
        assert b.negatives == 0 and b.suppressed_by_negative == 0
    assert products.support.support_id == alone.support.support_id


# -- negative examples ----------------------------------------------------------------------------------------
def test_a_negative_drops_the_look_alike_and_counts_what_it_dropped():
    persense = PerSense(colour_engines(), config())
    persense.set_support(*example(AMBER))
    image = frame([AMBER, BROWN, AMBER, BROWN, AMBER])
    before = persense.segment(image)
    assert before.count == 5 and before.negatives == 0  # the engine counts the brown ones as the product
    persense.add_negative(*example(BROWN))
    after = persense.segment(image)
    assert after.count == 3 and after.suppressed_by_negative == 2 and after.negatives == 1
    assert [inst.id for inst in after.instances] == [0, 1, 2]
    centres = sorted(inst.centroid[0] for inst in after.instances)
    assert np.allclose(centres, [20, 100, 180], atol=1)  # the amber ones stay
    assert persense.clear_negatives() == 1 and persense.segment(image).count == 5


def test_a_negative_identical_to_the_support_is_refused_and_changes_nothing():
    persense = PerSense(colour_engines(), config())
    persense.set_support(*example(AMBER))
    with pytest.raises(UserError, match="own example"):
        persense.add_negative(*example(AMBER))
    # An example that looks more like the product than the product's own example does is refused too.
    lighter = tuple(min(c + 4, 255) for c in AMBER)
    with pytest.raises(UserError, match="silence the product"):
        persense.add_negative(*example(lighter))
    assert persense.negatives == ()
    assert persense.segment(frame([AMBER, AMBER])).count == 2


def test_negatives_are_bounded_and_need_a_support():
    persense = PerSense(colour_engines(), config())
    with pytest.raises(UserError, match="set the support first"):
        persense.add_negative(*example(BROWN))
    persense.set_support(*example(AMBER))
    for k in range(MAX_NEGATIVES):
        persense.add_negative(*example((20 + 10 * k, 200, 240 - 10 * k)))
    with pytest.raises(UserError, match=f"{MAX_NEGATIVES} negative examples"):
        persense.add_negative(*example(BROWN))
    assert len(persense.negatives) == MAX_NEGATIVES
    assert persense.add_negative(*example((20, 200, 240))) is persense.negatives[0]  # the same example: no-op


# -- several products -------------------------------------------------------------------------------------------
def test_each_product_keeps_its_own_objects_and_the_frame_is_encoded_once():
    engines = colour_engines()
    calls = []
    encode = engines.encoder.encode
    engines.encoder.encode = lambda image: calls.append(1) or encode(image)
    products = Products(engines, config(), default_name="amber")
    products.set_support(*example(AMBER))
    products.add("blue", *example(BLUE))
    image = frame([AMBER, BLUE, AMBER, BLUE, BLUE])
    calls.clear()
    result = products.segment(image)
    assert len(calls) == 1
    assert {name: figures["count"] for name, figures in result.products.items()} == {"amber": 2, "blue": 3}
    # Each pipeline found all five discs; the claim rule gave each disc to the product it looks like.
    assert result.products["amber"]["claimed_by_other"] == 3 and result.products["blue"]["claimed_by_other"] == 2
    assert result.count == 5 and [inst.id for inst in result.instances] == list(range(5))
    for inst in result.instances:
        colour = image[int(inst.centroid[1]), int(inst.centroid[0])]
        assert inst.product == ("amber" if colour[0] > 200 else "blue")
    assert set(result.products["blue"]) >= {"label", "support_id", "match_quality", "suppressed_by_negative"}


def _disc(x: int, y: int, r: int = 5) -> Instance:
    mask = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
    cv2.circle(mask, (r, r), r, 1, -1)
    return Instance(0, 0.9, (x - r, y - r, x + r + 1, y + r + 1), mask.astype(bool))


def test_the_claim_rule_gives_an_object_to_the_better_match():
    a, b = [_disc(10, 10), _disc(40, 10)], [_disc(11, 10), _disc(70, 10)]
    # Columns: the match with product 0's prototype, with product 1's.
    matches_a = np.array([[0.9, 0.5], [0.4, 0.8]])  # a[1] looks like product 1: rule 1 drops it from product 0
    matches_b = np.array([[0.7, 0.6], [0.1, 0.9]])  # b[0] is a[0]'s object (IoU > 0.5): 0.9 + 0.7 > 0.5 + 0.6
    keep_a, keep_b = resolve_claims([a, b], [matches_a, matches_b])
    assert keep_a.tolist() == [True, False] and keep_b.tolist() == [False, True]
    # The other way round the same object goes to product 1.
    keep_a, keep_b = resolve_claims([a, b], [np.array([[0.6, 0.5], [0.4, 0.8]]), np.array([[0.5, 0.9], [0.1, 0.9]])])
    assert keep_a.tolist() == [False, False] and keep_b.tolist() == [True, True]
    # Masks that overlap little are two objects: both stay.
    far = [_disc(18, 10)]
    keep_a, keep_far = resolve_claims([a[:1], far], [matches_a[:1], np.array([[0.5, 0.6]])])
    assert keep_a.tolist() == [True] and keep_far.tolist() == [True]


def test_bad_products_are_refused_with_one_line_and_nothing_changes():
    products = Products(colour_engines(), config(), default_name="amber", max_products=2)
    products.set_support(*example(AMBER))
    with pytest.raises(UserError, match="already"):
        products.add("amber", *example(BLUE))
    with pytest.raises(UserError, match="product name"):
        products.add("no spaces", *example(BLUE))
    with pytest.raises(UserError, match="mask"):
        products.add("blue", frame([BLUE]), np.zeros((H, W), bool))
    assert products.names == ["amber"]
    products.add("blue", *example(BLUE))
    with pytest.raises(UserError, match="the most it takes"):
        products.add("brown", *example(BROWN))
    with pytest.raises(UserError, match="default product"):
        products.remove("amber")
    assert products.names == ["amber", "blue"]
    products.remove("blue")
    assert products.names == ["amber"] and not products.several


# -- the simulator's products mix, default engines --------------------------------------------------------------
def test_three_products_and_a_look_alike_on_the_default_engines():
    """A small run of the issue's measurement (docs/products.md gives the full one): every product counted, and one
    negative example silences the look-alike."""
    mix = MixedConveyor(width=480, height=360, n_objects=45, seed=0)
    products = build_products(build_engines(EnginesConfig()), MixedConveyor(width=480, height=360, n_objects=45,
                                                                               seed=1))
    assert products.names == ["biscuit", "tile", "soap"]
    frames = [0, 9]
    before = evaluate_mix(products, mix, frames)
    products.product("biscuit").add_negative(*MixedConveyor(width=480, height=360, n_objects=45, seed=1)
                                             .support("candy"))
    after = evaluate_mix(products, mix, frames)
    assert before["look_alikes"]["candy"]["counted_pct"] >= 30
    assert after["look_alikes"]["candy"]["counted_pct"] <= 2 and after["suppressed_by_negative"] > 0
    for name, figures in after["products"].items():
        assert figures["f1"] >= 0.8, (name, figures)


def test_segment_counts_the_configured_products_with_their_negatives(tmp_path):
    import json

    import yaml

    from streamer.cli import main

    examples = MixedConveyor(width=320, height=240, n_objects=30, seed=1)
    paths = {}
    for kind in ("biscuit", "tile", "candy"):
        image, mask = examples.support(kind)
        paths[kind] = (tmp_path / f"{kind}.png", tmp_path / f"{kind}_mask.png")
        cv2.imwrite(str(paths[kind][0]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(paths[kind][1]), mask.astype(np.uint8) * 255)
    query = MixedConveyor(width=320, height=240, n_objects=30, seed=0).frame(0)
    cv2.imwrite(str(tmp_path / "query.png"), cv2.cvtColor(query.image, cv2.COLOR_RGB2BGR))
    example = {kind: {"image": str(image), "mask": str(mask)} for kind, (image, mask) in paths.items()}
    config = tmp_path / "products.yaml"
    config.write_text(yaml.safe_dump({"products": [
        {"name": "biscuit", "support": {**example["biscuit"], "negatives": [example["candy"]]}},
        {"name": "tile", "support": example["tile"]}]}))
    assert main(["segment", "--config", str(config), "--out", str(tmp_path / "out"), str(tmp_path / "query.png")]) == 0
    doc = json.loads((tmp_path / "out" / "query.json").read_text())
    assert list(doc["products"]) == ["biscuit", "tile"] and doc["negatives"] == 1
    assert {inst["product"] for inst in doc["instances"]} == {"biscuit", "tile"}
    for name in ("biscuit", "tile"):
        assert abs(doc["products"][name]["count"] - query.counts[name]) <= max(2, query.counts[name] // 5), doc
    # Bad input: one line, exit 2.
    config.write_text(yaml.safe_dump({"products": [{"name": "a", "support": example["tile"]},
                                                   {"name": "a", "support": example["tile"]}]}))
    assert main(["segment", "--config", str(config), "--out", str(tmp_path / "bad"), str(tmp_path / "query.png")]) == 2


def test_bench_products_measures_one_and_n_products_in_one_run(tmp_path, capsys):
    import json

    from streamer.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--products", "2", "--frames", "2", "--warmup", "0", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["products"] == 2 and figures["names"] == ["biscuit", "tile"] and figures["frames"] == 2
    one, both = figures["one_product_ms"]["median"], figures["n_products_ms"]["median"]
    assert one > 0 and both > 0
    assert figures["extra_product_share"] == pytest.approx((both - one) / one, abs=2e-3)
    # The same products in turn, beside them in the same run, found exactly the same.
    turn = figures["in_turn"]["n_products_ms"]["median"]
    assert figures["in_turn"]["extra_product_share"] == pytest.approx((turn - one) / one, abs=2e-3)
    assert figures["results_identical"] is True and figures["product_threads"] >= 1
    assert "each product beyond the first adds" in capsys.readouterr().out
    assert main(["bench", "--products", "2", "--frames", "1", "--warmup", "0", "--product-threads", "2",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["product_threads"] == 2
    assert main(["bench", "--products", "2", "--product-threads", "0"]) == 2
    assert main(["bench", "--product-threads", "2"]) == 2
    assert main(["bench", "--products", "1"]) == 2
    assert main(["bench", "--products", "2", "--source", "sim:?objects=5"]) == 2


def test_two_round_products_share_a_frame_on_the_default_engines():
    """Two round products (amber biscuits, green mints) on one camera: each finds its own objects as it does alone.
    The outline engines once kept the first support's colour for the whole frame, and the second counted nothing."""
    from streamer.products_eval import run
    from streamer.simulator.mix import Kind

    biscuit = PRODUCTS_MIX[0]
    mint = Kind("mint", "ellipse", (130.0, 0.6, 0.7), 0.3)
    figures = run(frames=3, kinds=(biscuit, mint))["without_negative"]["products"]
    assert figures["biscuit"]["f1"] >= 0.9 and figures["mint"]["f1"] >= 0.9, figures
