"""Each category's product under every light of the development split, on textured belts with fresh seeds:

    python benchmarks/light_sweep.py [--categories round,angular,...] [--split development]

A robustness sweep, not a tuning set: the support is the category's own (taken in the support's light), each query
lays the category's products anew (seeds 901 + k) on a textured belt under the split's light k (the cross-image
scenes use one light per category; this uses all of them). Prints one line per category: per light, counted /
true and instance F1 (one-to-one at IoU > 0.5), with the default engines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engines.embedded import build_embedded_engines  # noqa: E402
from streamer.devset import categories as cat  # noqa: E402
from streamer.devset.belt import scene  # noqa: E402
from streamer.metrics_eval import evaluate  # noqa: E402
from streamer.persense import PerSense  # noqa: E402


def sweep(split_name: str, category: str) -> list[tuple[str, int, int, float]]:
    """(light words, counted, true, F1) for the category's product under each light of the split."""
    split = cat.VALIDATION if split_name == "validation" else cat.DEVELOPMENT
    index = cat.CATEGORIES.index(category)
    recipe = cat._recipes(split)[category]
    image, mask = cat._support_of(cat.category_scenes(split_name, category)["support"])
    rows = []
    for k, light in enumerate(split.lights):
        belt = cat._background(split, recipe, 900 + k, index + 1, True)
        laid = scene(belt, recipe.layers, light, 901 + k, occlusion=recipe.occlusion, gap=recipe.gap)
        persense = PerSense(build_embedded_engines())
        persense.set_support(image, mask)
        result = persense.segment(laid.image)
        rows.append((cat._light_words(light), result.count, int(laid.labels.max()),
                     evaluate(result, laid.labels).f1))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", default=",".join(cat.CATEGORIES), help="comma-separated categories")
    parser.add_argument("--split", choices=("development", "validation"), default="development")
    args = parser.parse_args()
    for category in args.categories.split(","):
        if category not in cat.CATEGORIES:
            print(f"unknown category {category!r}; known: {', '.join(cat.CATEGORIES)}", file=sys.stderr)
            return 2
        cells = [f"{words}: {counted}/{true} F1 {f1:.2f}" for words, counted, true, f1 in sweep(args.split, category)]
        print(f"{category} | " + " | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
