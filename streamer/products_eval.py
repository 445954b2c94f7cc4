"""Several products on one camera against the simulator's truth (issue 28): per product, the count error and the
instance F1; for a look-alike, how often it is counted as the product it resembles, before and after a negative
example of it.

    python -m streamer.products_eval --frames 40 --seed 0                   # docs/products.md gives the figures
    python -m streamer.products_eval --frames 40 --clean-examples [--no-claims]    # the claim rule's effect
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

import numpy as np

from streamer.metrics_eval import iou_matrix, match_instances
from streamer.persense.products import Products
from streamer.simulator.mix import PRODUCTS_MIX, Kind, MixedConveyor


@dataclass
class ProductFigures:
    """One product's figures over the frames of a run."""

    count_errors: list[float] = field(default_factory=list)  # |count - truth| / truth per frame (truth > 0)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def summary(self) -> dict:
        precision = self.tp / max(self.tp + self.fp, 1)
        recall = self.tp / max(self.tp + self.fn, 1)
        return {
            "median_count_error_pct": round(100 * float(np.median(self.count_errors)), 2) if self.count_errors else None,
            "mean_count_error_pct": round(100 * float(np.mean(self.count_errors)), 2) if self.count_errors else None,
            "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
            "precision": round(precision, 4), "recall": round(recall, 4),
        }


def build_products(engines, examples: MixedConveyor, config=None) -> Products:
    """A Products of every product kind of a mix, each with its example from `examples` (a mix's belt) as its
    support."""
    names = examples.products
    products = Products(engines, config, default_name=names[0])
    products.set_support(*examples.support(names[0]))
    for name in names[1:]:
        products.add(name, *examples.support(name))
    return products


def evaluate_mix(products: Products, mix: MixedConveyor, frames: list[int]) -> dict:
    """Segment the mix's `frames`; per product its figures, and per look-alike kind the share of its appearances
    (visible objects, frame by frame) that an instance of the product it resembles matches (IoU > 0.5)."""
    figures = {name: ProductFigures() for name in products.names}
    look_alikes = {k.name: k.look_alike_of for k in mix.kinds if k.look_alike_of in figures}
    counted = dict.fromkeys(look_alikes, 0)
    appearances = dict.fromkeys(look_alikes, 0)
    suppressed = 0
    for index in frames:
        scene = mix.frame(index)
        result = products.segment(scene.image)
        suppressed += result.suppressed_by_negative
        for name, fig in figures.items():
            own = [inst for inst in result.instances if (inst.product or products.names[0]) == name]
            truth = scene.counts[name]
            if truth:
                fig.count_errors.append(abs(len(own) - truth) / truth)
            match = match_instances(own, scene.labels_of(name))
            fig.tp, fig.fp, fig.fn = fig.tp + match.true_positives, fig.fp + match.false_positives, \
                fig.fn + match.false_negatives
        for kind, product in look_alikes.items():
            own = [inst for inst in result.instances if (inst.product or products.names[0]) == product]
            ious = iou_matrix(own, scene.labels_of(kind))
            counted[kind] += int((ious > 0.5).any(axis=0).sum()) if ious.size else 0
            appearances[kind] += scene.counts[kind]
    return {
        "frames": len(frames),
        "products": {name: fig.summary() for name, fig in figures.items()},
        "look_alikes": {kind: {"of": look_alikes[kind], "appearances": appearances[kind],
                               "counted_as_product": counted[kind],
                               "counted_pct": round(100 * counted[kind] / max(appearances[kind], 1), 2)}
                        for kind in look_alikes},
        "suppressed_by_negative": suppressed,
    }


class CleanExamples:
    """Each kind's example alone on a plain stretch of belt, as an uploaded image and mask would show it (the other
    kinds are then nowhere in the examples)."""

    def __init__(self, mix: MixedConveyor, seed: int = 0):
        self.mix, self.seed, self.products = mix, seed, mix.products

    def support(self, name: str):
        from streamer.simulator.scene import example_on_belt

        kind = self.mix.kind(name)
        rng = np.random.default_rng(self.seed + 7919 + 104_729 * self.mix.kinds.index(kind))
        size = int(max(8 * self.mix.object_radius, 64))
        return example_on_belt(rng, kind.sprite(rng, self.mix.object_radius), size, size)


def run(frames: int = 40, step: int = 3, seed: int = 0, kinds: tuple[Kind, ...] = PRODUCTS_MIX, clean: bool = False,
        claims: bool = True, **mix_options) -> dict:
    """The issue's measurement: the mix without a negative, then with one negative example of each look-alike
    (the mix's example of it, added to the product it resembles).

    clean: the examples alone on a plain belt (CleanExamples) rather than picked on another stretch of the running
    belt among the other kinds; claims: False turns the claim rule off (streamer.persense.claims), to measure it."""
    from streamer.config import EnginesConfig
    from streamer.engine_factory import build_engines

    mix = MixedConveyor(kinds, seed=seed, **mix_options)
    # The examples are picked on another stretch of belt (another seed): no object measured is its own example.
    examples = CleanExamples(mix, seed) if clean else MixedConveyor(kinds, seed=seed + 1, **mix_options)
    engines = build_engines(EnginesConfig())
    products = build_products(engines, examples)
    products.claims = claims
    indices = [i * step for i in range(frames)]
    before = evaluate_mix(products, mix, indices)
    for kind in mix.kinds:
        if kind.look_alike_of is not None:
            products.product(kind.look_alike_of).add_negative(*examples.support(kind.name))
    after = evaluate_mix(products, mix, indices)
    return {"engines": engines.name, "seed": seed, "examples": "clean belt" if clean else "picked on the running belt",
            "claims": claims, "without_negative": before, "with_one_negative": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames measured (default 40)")
    parser.add_argument("--step", type=int, default=3, help="belt frames between measured ones (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean-examples", action="store_true",
                        help="each product's example alone on a plain belt (as an upload), not picked among the others")
    parser.add_argument("--no-claims", action="store_true", help="turn the claim rule off (to measure it)")
    args = parser.parse_args(argv)
    json.dump(run(args.frames, args.step, args.seed, clean=args.clean_examples, claims=not args.no_claims),
              sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
