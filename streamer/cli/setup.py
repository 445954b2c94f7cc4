"""`persense setup NAME`: fetch a segmenter (and CounTR), export them, write a ready configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamer.cli.models import add_cache_arguments, cache_and_catalogue

DEFAULT_OUT = Path("persense-models")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "setup", help="fetch, export and configure real models in one step",
        description="Fetch the checkpoints the cache lacks, export them to ONNX (and TensorRT engines with "
        "--tensorrt), write OUT/config.yaml and print the `persense run` command that uses it.",
    )
    parser.add_argument("name", metavar="NAME", help="segmenter: sam-vit-b, sam-vit-l or sam-vit-h")
    parser.add_argument("--dmg", choices=("sam-correlation", "countr"), default="sam-correlation",
                        help="density map generator: CounTR (the paper's, a second download) or SAM's own "
                        "embedding (default)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"exported models and config.yaml (default ./{DEFAULT_OUT})")
    parser.add_argument("--tensorrt", action="store_true", help="also build TensorRT engines (needs a GPU)")
    parser.add_argument("--fp16", action="store_true", help="TensorRT engines in FP16 (with --tensorrt)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cache_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.models.setup import plan_setup, run_command, run_setup

    root, catalogue = cache_and_catalogue(args)
    plan = plan_setup(catalogue, args.name, args.dmg, args.out, tensorrt=args.tensorrt, fp16=args.fp16)
    config = run_setup(plan, root, progress=not args.no_progress and sys.stderr.isatty())
    print(f"wrote {config}; run the line with:")
    print(f"  {run_command(plan)}")
    return 0
