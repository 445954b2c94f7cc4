"""`persense bench --workers`' measurement for several stream settings, alternating within each round.

    python benchmarks/workers_variants.py --frames 24 --rounds 3 \
        --variant '{"workers": 1}' --variant '{"workers": 2, "worker_opencv_threads": 2}' --variant '{"workers": 2}'

Each --variant is a JSON object of `stream` settings (workers, worker_opencv_threads, worker_threads, ...); each round
runs every variant once, one after the other, on the unpaced simulator (640x480, 60 objects), so that the ratios of
one round come from the same minute of a machine whose load changes. Prints each run's frames/s, latency p50/p95,
its segmenting time, CPU and load average; then each variant against the first (median of the rounds' ratios) and
whether every variant's results were bit-identical and in the same order as the first's.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="JSON object of stream settings")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cameras", type=int, default=1)
    args = parser.parse_args()
    if not (1 <= args.frames <= 10_000 and 1 <= args.warmup <= 1000 and 1 <= args.rounds <= 100
            and 1 <= args.cameras <= 16 and len(args.variant) <= 8):
        parser.error("--frames 1..10000, --warmup 1..1000, --rounds 1..100, --cameras 1..16, at most 8 variants")
    variants = [json.loads(text) for text in args.variant]

    from streamer.bench_workers import run_stream_benchmark
    from streamer.cli.bench_workers import _by_camera
    from streamer.config import Config
    from streamer.engine_factory import build_engines
    from streamer.sources.uri import open_source

    config = Config()
    engines = build_engines(config.engines)
    factory = partial(build_engines, config.engines)
    reports: list[list] = [[] for _ in variants]
    for round_index in range(args.rounds):
        for i, variant in enumerate(variants):
            stream = config.stream.model_copy(update=variant)
            sources = [open_source(f"sim:?objects=60&fps=0&seed={c}", camera_id=f"cam{c}")
                       for c in range(args.cameras)]
            supports = [source.support() for source in sources]
            report = run_stream_benchmark(config.model_copy(update={"stream": stream}), engines, factory, sources,
                                          supports, args.frames, args.warmup, variant.get("workers", 1))
            reports[i].append(report)
            s = report.summary()
            print(f"round {round_index + 1} {json.dumps(variant)}: {s['fps']:.2f} frames/s, latency p50 "
                  f"{s['latency_ms']['p50']} p95 {s['latency_ms']['p95']} ms (segmenting p50 {s['segment_ms_p50']} "
                  f"ms, the rest {s['beside_segment_ms_p50']} ms), CPU {s['cpu_cores']} cores "
                  f"({s['cpu_ms_per_frame']} ms a frame), load average {s['load_before']}", flush=True)
    base = reports[0]
    for variant, runs in zip(variants[1:], reports[1:]):
        fps = [o.fps / b.fps for b, o in zip(base, runs)]
        p50 = [np.percentile(o.latency_ms, 50) / np.percentile(b.latency_ms, 50) for b, o in zip(base, runs)]
        same = all(_by_camera(o.digests) == _by_camera(b.digests) for b, o in zip(base, runs))
        print(f"{json.dumps(variant)} against {json.dumps(variants[0])}: frames/s x{np.median(fps):.2f} "
              f"({', '.join(f'{r:.2f}' for r in fps)}), p50 latency x{np.median(p50):.2f} "
              f"({', '.join(f'{r:.2f}' for r in p50)}), results {'bit-identical' if same else 'DIFFERENT'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
