"""`persense bench`: stage latencies, throughput and memory of the real pipeline, without the network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamer.bench import format_table, run_benchmark
from streamer.cli.common import add_config_argument, build_pipeline, config_from_args
from streamer.errors import UserError
from streamer.imageio import read_image, read_mask
from streamer.machine import format_machine, machine_description
from streamer.simulator.shapes import SCENES
from streamer.sources.redact import redact
from streamer.sources.uri import open_source
from streamer.stream.ahead import encode_ahead_enabled

SWEEP_OBJECTS = (10, 50, 200, 500)
SWEEP_SIZES = ((640, 480), (1280, 720), (1920, 1080))


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure per-stage latency, fps and memory of the pipeline",
        description="Run the same per-frame code as `persense run` (read, segment, encode the message) without the "
        "network, and print median/p99 latency per stage (with tracking: measuring, tracking and counting as a "
        "counting line makes the stream do), frames per second, end-to-end latency, objects per frame "
        "and peak memory. The default source is the conveyor simulator at 640x480 with 60 objects, unpaced.",
    )
    add_config_argument(parser)
    parser.add_argument("--source", default=None, metavar="URI", help="frames from here (default: sim:?objects=60)")
    parser.add_argument("--support", type=Path, metavar="IMAGE", help="support image (default: the simulator's)")
    parser.add_argument("--support-mask", type=Path, metavar="MASK", help="support mask")
    parser.add_argument("--scene", choices=tuple(SCENES), default=None,
                        help="the simulator's named scene: default (round products), or shapes (about 50 "
                        "elongated and angular products: rods, L-brackets, tees, stars, with rectangles of another "
                        "kind); with --source, that source must be a sim: one")
    parser.add_argument("--frames", type=int, default=30, metavar="N", help="frames measured (default 30)")
    parser.add_argument("--warmup", type=int, default=3, metavar="N", help="frames run before measuring (default 3)")
    parser.add_argument("--sweep", action="store_true", help=f"simulator at {SWEEP_OBJECTS} objects x 640x480, 1280x720, 1920x1080")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON too")
    parser.add_argument("--products", type=int, default=None, metavar="N",
                        help="the cost of several products on one camera: the simulator's products mix segmented for "
                        "its first product alone and for N products, in turn, in one run; prints what each product "
                        "beyond the first adds to the one-product frame time (docs/products.md)")
    parser.add_argument("--product-threads", type=int, default=None, metavar="T",
                        help="with --products: the products side by side on T threads (default: "
                        "stream.product_threads, else the cores); the same products in turn are measured beside them")
    parser.add_argument("--encode-ahead", choices=("on", "off"), default=None,
                        help="encode the next frame while this one is segmented, or each in turn (default: "
                        "stream.encode_ahead from the config; unset, on where the encoder runs on a GPU)")
    parser.add_argument("--workers", metavar="N[,N...]", default=None,
                        help="run the stream's worker with N workers (1: the one inference thread; more: as "
                        "stream.workers) on every frame of --cameras simulated cameras, and report frames/s, latency "
                        "p50/p95 from a frame's taking to its result, CPU use and the load average; several values "
                        "(e.g. 1,2) alternate within each of --rounds rounds, each compared with the first, "
                        "results too (bit for bit, in order)")
    parser.add_argument("--cameras", type=int, default=None, metavar="M",
                        help="with --workers: M cameras (the simulator with seeds 0..M-1, or --source for each)")
    parser.add_argument("--rounds", type=int, default=1, metavar="R", help="with --workers: rounds (default 1)")
    parser.set_defaults(func=run)


def _support_for(args, config, source):
    image_path = args.support or config.support.image
    mask_path = args.support_mask or config.support.mask
    if image_path and mask_path:
        return read_image(image_path, "support image"), read_mask(mask_path, "support mask")
    if hasattr(source, "support"):
        return source.support()
    raise UserError("this source has no built-in support set: give --support IMAGE --support-mask MASK")


def _with_scene(source: str | None, scene: str) -> str:
    """The sim: URI that runs `scene` (unpaced unless `source` says otherwise); UserError for a source that is not
    the simulator. Options in `source` win over the scene's."""
    if source is None:
        return f"sim:?scene={scene}&fps=0"
    text = source.strip()
    if text.lower() != "sim" and not text.lower().startswith("sim:"):
        raise UserError(f"--scene is a simulator scene; --source {redact(text)} is not the simulator (sim:?...)")
    query = text.split("?", 1)[1] if "?" in text else ""
    paced = "fps=" in query
    return "sim:?" + "&".join(part for part in (f"scene={scene}", query, "" if paced else "fps=0") if part)


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.warmup < 0:
        raise UserError("--frames must be >= 1 and --warmup >= 0")
    config = config_from_args(args)
    if args.products is not None:
        return _products(args, config)
    if args.product_threads is not None:
        raise UserError("--product-threads goes with --products")
    if args.workers is not None or args.cameras is not None:
        from streamer.cli.bench_workers import run_workers

        return run_workers(args, config)
    pipeline = build_pipeline(config)
    scene = getattr(args, "scene", None)
    if args.sweep:
        extra = f"&scene={scene}" if scene else ""
        runs = [
            (f"sim {n} obj", f"sim:?objects={n}&width={w}&height={h}&fps=0{extra}")
            for w, h in SWEEP_SIZES for n in SWEEP_OBJECTS
        ]
    elif scene:
        runs = [(f"sim {scene}", _with_scene(args.source, scene))]
    else:
        # The label is printed and written to --json: never with the credentials a URI may carry.
        runs = [(redact(args.source) if args.source else "sim", args.source or "sim:?objects=60&fps=0")]

    machine = machine_description()
    setting = {"on": True, "off": False}.get(args.encode_ahead, config.stream.encode_ahead)
    encode_ahead = encode_ahead_enabled(setting, pipeline.engines.encoder)
    summaries = []
    for label, uri in runs:
        source = open_source(uri, camera_id="bench")
        pipeline.set_support(*_support_for(args, config, source))
        summary = run_benchmark(pipeline, source, args.frames, args.warmup, label, encode_ahead=encode_ahead).summary()
        summary["encode_ahead"] = encode_ahead
        summary["engines"] = pipeline.engines.name
        summary["machine"] = machine
        summaries.append(summary)
        print(format_table([summary]).splitlines()[2], flush=True) if args.sweep else None
    print(format_table(summaries))
    print(format_machine(machine))
    if args.json:
        try:
            args.json.write_text(json.dumps(summaries if args.sweep else summaries[0], indent=2))
        except OSError as exc:
            raise UserError(f"cannot write {args.json}: {exc.strerror}") from None
    return 0


def _products(args: argparse.Namespace, config) -> int:
    from streamer.bench_products import format_products, run_products_benchmark
    from streamer.engine_factory import build_engines
    from streamer.simulator.mix import MixedConveyor
    from streamer.stream.worker_choice import resolved_product_threads

    if args.sweep or args.scene or args.source or args.support:
        raise UserError("--products runs on the simulator's products mix: without --sweep, --scene, --source or "
                        "--support")
    threads = args.product_threads if args.product_threads is not None else \
        resolved_product_threads(config.stream.product_threads)
    if not 1 <= threads <= 64:
        raise UserError(f"--product-threads takes 1 to 64, got {threads}")
    engines = build_engines(config.engines)
    summary = run_products_benchmark(engines, config.pipeline, MixedConveyor(), MixedConveyor(seed=1), args.products,
                                     args.frames, args.warmup, product_threads=threads)
    summary["machine"] = machine_description()
    print(format_products(summary))
    print(format_machine(summary["machine"]))
    if args.json:
        try:
            args.json.write_text(json.dumps(summary, indent=2))
        except OSError as exc:
            raise UserError(f"cannot write {args.json}: {exc.strerror}") from None
    return 0
