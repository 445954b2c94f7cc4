"""Print the development set's table: `python -m streamer.devset [--only SUBSTRING] [--json FILE]`.

Every case goes through the real pipeline (PerSense.set_support, then segment) with the embedded engines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

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

    @property
    def count_error(self) -> float:
        return abs(self.counted - self.truth) / max(self.truth, 1)


def run_case(case: Case) -> CaseResult:
    from engines.embedded import build_embedded_engines
    from streamer.persense import PerSense

    persense = PerSense(build_embedded_engines())
    persense.set_support(case.support_image, case.support_mask)
    start = time.perf_counter()
    result = persense.segment(case.image)
    ms = (time.perf_counter() - start) * 1000
    quality = evaluate(result, case.labels)
    match = getattr(result, "match_quality", float("nan"))
    return CaseResult(case.name, case.kind, case.count, result.count, quality.f1, quality.union_iou, match, ms)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamer.devset", description=__doc__)
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--set", choices=("development", "validation"), default="development",
                        help="the development set (default) or the validation set kept apart from tuning")
    args = parser.parse_args(argv)
    every = development_cases() if args.set == "development" else validation_cases()
    cases = [c for c in every if not args.only or args.only in c.name]
    results = []
    for case in cases:
        results.append(run_case(case))
        print(f"{case.name}: {results[-1].counted}/{case.count}, F1 {results[-1].f1:.3f}", file=sys.stderr)
    print(table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(r) for r in results], fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
