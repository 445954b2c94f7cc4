"""Print a development set's table: `python -m streamer.devset [--set NAME] [--only SUBSTRING] [--json FILE]
[--engines MODULE:FUNCTION] [--sheet PNG]`.

Every case goes through the real pipeline (PerSense.set_support, then segment) with the embedded engines, or
with the engine set that `--engines` names (a function that takes no argument and returns an EngineSet), so
a new engine set can be compared on the same cases. The category sets (`--set categories`,
`categories-validation`) print their table by category with per-category medians.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from streamer.devset.cases import Case, development_cases, validation_cases
from streamer.metrics_eval import evaluate


@dataclass
class CaseResult:
    name: str
    kind: str
    truth: int
    counted: int
    f1: float
    union_iou: float
    match_quality: float
    ms: float
    category: str = ""

    @property
    def count_error(self) -> float:
        return abs(self.counted - self.truth) / max(self.truth, 1)


def run_case(case: Case, engines: Callable[[], Any] | None = None) -> CaseResult:
    """The case through PerSense with a fresh engine set from `engines` (default: the embedded engines)."""
    from streamer.persense import PerSense

    if engines is None:
        from engines.embedded import build_embedded_engines as engines
    persense = PerSense(engines())
    persense.set_support(case.support_image, case.support_mask)
    start = time.perf_counter()
    result = persense.segment(case.image)
    ms = (time.perf_counter() - start) * 1000
    quality = evaluate(result, case.labels)
    match = getattr(result, "match_quality", float("nan"))
    return CaseResult(case.name, case.kind, case.count, result.count, quality.f1, quality.union_iou, match, ms,
                      case.category)


def engine_factory(spec: str) -> Callable[[], Any]:
    """`package.module:function` -> that function (it builds an EngineSet)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"--engines wants MODULE:FUNCTION, got {spec!r}")
    return getattr(importlib.import_module(module), name)


def table(results: list[CaseResult]) -> str:
    lines = ["| case | kind | true | counted | F1 | union IoU | match quality |", "|---|---|---|---|---|---|---|"]
    for r in results:
        scored = r.kind != "foreign"
        f1 = f"{r.f1:.3f}" if scored else "-"
        iou = f"{r.union_iou:.3f}" if scored else "-"
        lines.append(
            f"| {r.name} | {r.kind} | {r.truth} | {r.counted} | {f1} | {iou} | {r.match_quality:.2f} |"
        )
    scored = [r for r in results if r.kind != "foreign"]
    foreign = [r for r in results if r.kind == "foreign"]
    lines.append("")
    lines.append(
        f"median count error {np.median([r.count_error for r in scored]):.1%}, "
        f"median F1 {np.median([r.f1 for r in scored]):.3f}, "
        f"foreign supports counted at most {max((r.counted for r in foreign), default=0)}"
    )
    return "\n".join(lines)


def category_table(results: list[CaseResult]) -> str:
    """The category sets' table: one row a case, then per category its median F1 and median count error over
    the scored cases and the most any foreign support counted, then the overall bars."""
    lines = ["| category | case | kind | true | counted | F1 | union IoU | match quality |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        scored = r.kind != "foreign"
        f1 = f"{r.f1:.3f}" if scored else "-"
        iou = f"{r.union_iou:.3f}" if scored else "-"
        lines.append(f"| {r.category} | {r.name} | {r.kind} | {r.truth} | {r.counted} | {f1} | {iou} | "
                     f"{r.match_quality:.2f} |")
    lines += ["", "| category | median F1 | median count error | foreign max count |", "|---|---|---|---|"]
    for category in dict.fromkeys(r.category for r in results):
        mine = [r for r in results if r.category == category]
        scored = [r for r in mine if r.kind != "foreign"]
        foreign = [r for r in mine if r.kind == "foreign"]
        f1 = f"{np.median([r.f1 for r in scored]):.3f}" if scored else "-"
        err = f"{np.median([r.count_error for r in scored]):.1%}" if scored else "-"
        worst = str(max(r.counted for r in foreign)) if foreign else "-"
        lines.append(f"| {category} | {f1} | {err} | {worst} |")
    lines += ["", _bars(results)]
    return "\n".join(lines)


def _bars(results: list[CaseResult]) -> str:
    """The product's bars (median count error <= 10%, median F1 >= 0.80, every foreign support <= 2) on all."""
    scored = [r for r in results if r.kind != "foreign"]
    foreign = [r for r in results if r.kind == "foreign"]
    if not scored:
        return f"foreign supports counted at most {max((r.counted for r in foreign), default=0)}"
    err, f1 = float(np.median([r.count_error for r in scored])), float(np.median([r.f1 for r in scored]))
    worst = max((r.counted for r in foreign), default=0)
    held = err <= 0.10 and f1 >= 0.80 and worst <= 2
    return (f"overall: median count error {err:.1%} (bar <= 10%), median F1 {f1:.3f} (bar >= 0.80), foreign "
            f"supports counted at most {worst} (bar <= 2): bars {'held' if held else 'NOT held'}")


SETS = ("development", "validation", "categories", "categories-validation")


def _cases(name: str) -> list[Case]:
    if name == "development":
        return development_cases()
    if name == "validation":
        return validation_cases()
    from streamer.devset.categories import SETS as CATEGORY_SETS

    return CATEGORY_SETS[name]()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.devset", description=__doc__)
    parser.add_argument("--only", help="run the cases whose name (or category) contains this")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--set", choices=SETS, default="development",
                        help="the development set (default), the validation set kept apart from tuning, or the "
                             "sets by category of product (categories, categories-validation)")
    parser.add_argument("--engines", metavar="MODULE:FUNCTION",
                        help="the engine set's factory (default engines.embedded:build_embedded_engines)")
    parser.add_argument("--sheet", metavar="PNG",
                        help="write a contact sheet of the selected cases (support and truth outlined) and exit")
    args = parser.parse_args(argv)
    engines = engine_factory(args.engines) if args.engines else None
    cases = [c for c in _cases(args.set) if not args.only or args.only in c.name or args.only == c.category]
    if args.sheet:
        from streamer.devset.sheet import contact_sheet

        contact_sheet(cases, args.sheet, truth=True)
        print(f"wrote {args.sheet} ({len(cases)} cases)", file=sys.stderr)
        return 0
    results = []
    for case in cases:
        results.append(run_case(case, engines))
        print(f"{case.name}: {results[-1].counted}/{case.count}, F1 {results[-1].f1:.3f}", file=sys.stderr)
    print(category_table(results) if args.set.startswith("categories") else table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(r) for r in results], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
