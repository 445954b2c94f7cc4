"""`persense bench --workers N[,N...] --cameras M --rounds R`: the stream's worker with N workers on M cameras;
several N alternate within each round, so that their ratios come from one run on a machine whose load changes."""

from __future__ import annotations

import argparse
import json
from functools import partial

import numpy as np

from streamer.bench_workers import StreamBenchReport, run_stream_benchmark
from streamer.config import Config
from streamer.engine_factory import build_engines
from streamer.errors import UserError
from streamer.machine import format_machine, machine_description
from streamer.sources.redact import redact
from streamer.sources.uri import open_source
from streamer.stream.config import MAX_WORKERS

_MAX_CAMERAS = 64  # as stream.sources
_MAX_ROUNDS = 100
SAME = "bit-identical, each camera's in the same order"


def _workers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(not 1 <= v <= MAX_WORKERS for v in values):
        raise UserError(f"--workers takes numbers from 1 to {MAX_WORKERS}, comma-separated (e.g. 1,2); got {text[:40]!r}")
    return values


def _uri(args: argparse.Namespace, camera: int) -> str:
    if args.source:
        return args.source
    scene = f"&scene={args.scene}" if args.scene else ""
    return f"sim:?objects=60&fps=0&seed={camera}{scene}"


def run_workers(args: argparse.Namespace, config: Config) -> int:
    from streamer.cli.bench import _support_for

    counts = _workers(args.workers or "1")
    cameras = 1 if args.cameras is None else args.cameras
    if not 1 <= cameras <= _MAX_CAMERAS:
        raise UserError(f"--cameras must be from 1 to {_MAX_CAMERAS}")
    if not 1 <= args.rounds <= _MAX_ROUNDS:
        raise UserError(f"--rounds must be from 1 to {_MAX_ROUNDS}")
    if args.sweep:
        raise UserError("--sweep and --workers are separate benchmarks: give one of them")
    if args.warmup < 1:
        raise UserError("--workers needs --warmup 1 or more (the measurement starts after the warm-up)")
    engines = build_engines(config.engines)
    factory = partial(build_engines, config.engines)
    reports: dict[int, list[StreamBenchReport]] = {n: [] for n in counts}
    rows = []
    for round_index in range(args.rounds):
        for n in counts:
            sources = [open_source(_uri(args, i), camera_id=f"cam{i}") for i in range(cameras)]
            supports = [_support_for(args, config, source) for source in sources]
            report = run_stream_benchmark(config, engines, factory, sources, supports, args.frames, args.warmup, n)
            reports[n].append(report)
            row = {"round": round_index + 1, **report.summary()}
            rows.append(row)
            print(_row(row), flush=True)
    comparisons = [_compare(reports[counts[0]], reports[n]) for n in counts[1:]]
    for line in comparisons:
        print(line["text"])
    machine = machine_description()
    print(f"source: {redact(_uri(args, 0))}{' (seeds 0..%d)' % (cameras - 1) if not args.source else ''}; "
          f"engines {engines.name}")
    print(format_machine(machine))
    if args.json:
        out = {"engines": engines.name, "runs": rows, "comparisons": [{k: v for k, v in c.items() if k != "text"}
                                                                      for c in comparisons], "machine": machine}
        try:
            args.json.write_text(json.dumps(out, indent=2))
        except OSError as exc:
            raise UserError(f"cannot write {args.json}: {exc.strerror}") from None
    return 0


def _row(row: dict) -> str:
    lat = row["latency_ms"]
    return (f"round {row['round']}: {row['workers']} worker(s), {row['cameras']} camera(s): {row['fps']:.2f} frames/s, "
            f"latency p50 {lat['p50']:.1f} ms p95 {lat['p95']:.1f} ms (segmenting p50 {row['segment_ms_p50']} ms, "
            f"the rest {row['beside_segment_ms_p50']} ms), CPU {row['cpu_cores']:.2f} cores "
            f"({row['cpu_ms_per_frame']} ms a frame, {100 * row['cpu_workers_share']:.0f}% in worker processes), "
            f"{row['failed']} failed, load average {row['load_before']:.2f} before")


def _by_camera(digests: list[tuple[str, int, str]]) -> dict[str, list[tuple[int, str]]]:
    cameras: dict[str, list[tuple[int, str]]] = {}
    for camera, index, digest in digests:
        cameras.setdefault(camera, []).append((index, digest))
    return cameras


def _compare(base: list[StreamBenchReport], other: list[StreamBenchReport]) -> dict:
    """`other` against `base`, round by round (each pair ran one after the other): median ratios, identity."""
    fps = [o.fps / b.fps for b, o in zip(base, other) if b.fps > 0]
    p50 = [np.percentile(o.latency_ms, 50) / np.percentile(b.latency_ms, 50) for b, o in zip(base, other)]
    # Per camera: how the cameras' frames interleave depends on when each camera delivers them, not on the worker.
    identical = all(_by_camera(o.digests) == _by_camera(b.digests) for b, o in zip(base, other))
    out = {
        "workers": other[0].workers, "against": base[0].workers,
        "fps_ratio": round(float(np.median(fps)), 3) if fps else None,
        "fps_ratios": [round(float(r), 3) for r in fps],
        "p50_latency_ratio": round(float(np.median(p50)), 3),
        "results_identical": identical,
    }
    out["text"] = (f"{out['workers']} vs {out['against']} worker(s): frames/s x{out['fps_ratio']} (median of rounds "
                   f"{', '.join(f'{r:.2f}' for r in fps)}), p50 latency x{out['p50_latency_ratio']}, results "
                   f"{SAME if identical else 'DIFFERENT'}")
    return out
