"""Click-to-pick quality: a click at the middle of an item, the mask `pick_object` makes there (the console's and
`persense support --point`'s path, default engines), against the item's exact truth.

    python benchmarks/pick_quality.py --split development --clicks 6
    python benchmarks/pick_quality.py --split validation --clicks 6 --simulator ellipse,rod,bracket,tee,star,washer

Per scene: the median IoU of the picked masks with their items (random items, the click at each item's deepest
point). --segment also takes the click on the support object as the support and segments the scene's query
image: the F1 a user who clicks instead of drawing a mask gets. --blobs measures the outline engines' own blob
(engines.anyshape.follow not used), the figure before masks followed items' outlines.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.anyshape import build_routed_engines  # noqa: E402
from streamer.devset.categories import category_cases  # noqa: E402
from streamer.errors import UserError  # noqa: E402
from streamer.persense.pick import pick_object  # noqa: E402


def _middle(mask: np.ndarray) -> tuple[float, float]:
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return float(x), float(y)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def _picked(engines, image, point, embedding=None) -> np.ndarray:
    try:
        return pick_object(engines, image, point, embedding).mask
    except UserError:
        return np.zeros(image.shape[:2], bool)


def click_ious(engines, image: np.ndarray, labels: np.ndarray, clicks: int, seed: int = 0) -> list[float]:
    """IoU of the picks at the middle of `clicks` random items of int32 `labels` (those clear of the border)."""
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    items = [k for k in range(1, int(labels.max()) + 1) if k not in edge and (labels == k).any()]
    np.random.default_rng(seed).shuffle(items)
    embedding = engines.encoder.encode(image)
    return [_iou(_picked(engines, image, _middle(labels == k), embedding), labels == k) for k in items[:clicks]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="development", choices=["development", "validation"])
    parser.add_argument("--clicks", type=int, default=6, help="items clicked per scene")
    parser.add_argument("--simulator", default="", help="comma-separated simulator shapes to click on as well")
    parser.add_argument("--segment", action="store_true", help="also segment each case from a click on its support")
    parser.add_argument("--blobs", action="store_true", help="the outline engines' blobs, not the items' outlines")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    def build_engines():
        engines = build_routed_engines()
        engines.decoder.follow_picks = not args.blobs
        return engines

    engines = build_engines()
    medians = []
    print("| category | scene | median click IoU | clicks |")
    print("|---|---|---|---|")
    for case in category_cases(args.split):
        if case.kind != "same-image":
            continue
        ious = click_ious(engines, case.image, case.labels, args.clicks)
        medians.append(float(np.median(ious)))
        print(f"| {case.category} | {case.name} | {medians[-1]:.3f} | {len(ious)} |", flush=True)
    if args.simulator:
        from streamer.simulator import ConveyorSimulator

        for shape in args.simulator.split(","):
            simulator = ConveyorSimulator(shape=shape)
            ious = []
            for index in (3, 40):
                scene = simulator.frame(index)
                ious += click_ious(engines, scene.image, scene.labels, args.clicks + 2)
            print(f"| simulator | {shape} | {float(np.median(ious)):.3f} | {len(ious)} |", flush=True)
    print(f"\nmedian over the {args.split} scenes: {float(np.median(medians)):.3f}")
    if args.segment:
        from streamer.metrics_eval import evaluate
        from streamer.persense import PerSense

        print("\n| category | case | kind | support click IoU | true | counted | F1 |\n|---|---|---|---|---|---|---|")
        for case in category_cases(args.split):
            if case.kind == "foreign":
                continue
            case_engines = build_engines()
            mask = _picked(case_engines, case.support_image, _middle(case.support_mask))
            persense = PerSense(case_engines)
            persense.set_support(case.support_image, mask)
            result = persense.segment(case.image)
            quality = evaluate(result, case.labels)
            print(f"| {case.category} | {case.name} | {case.kind} | {_iou(mask, case.support_mask):.2f} | "
                  f"{case.count} | {result.count} | {quality.f1:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
