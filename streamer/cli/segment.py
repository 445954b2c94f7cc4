"""`persense segment`: segment query images with a one-shot support set; write JSON, mask and overlay per query."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from engines.outputs import check_output_dir
from streamer.cli.common import (
    add_config_argument, build_pipeline, build_products, config_from_args, load_support, read_negatives,
)
from streamer.errors import UserError
from streamer.imageio import read_image, write_image
from streamer.render import overlay
from streamer.schema import result_to_dict

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment query images given one support image and mask",
        description="Count and segment every instance of the support's kind in each query image. Writes, per "
        "query, OUT/<stem>.json (schema persense.result/1), OUT/<stem>_mask.png (union mask) and "
        "OUT/<stem>_overlay.jpg.",
    )
    parser.add_argument("--support", type=Path, metavar="IMAGE", help="support image with one example object")
    parser.add_argument("--support-mask", type=Path, metavar="MASK", help="mask of the example (non-zero = object)")
    add_config_argument(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (created)")
    parser.add_argument("queries", nargs="+", type=Path, metavar="QUERY", help="query images")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_output_dir(args.out)
    # Each query is a photograph of its own: each is checked for objects at another scale than the support's.
    config.pipeline.scale_check_interval_s = 0.0
    if config.products is not None:
        if args.support or args.support_mask:
            raise UserError("the config lists products: their supports are its own (no --support)")
        pipeline = build_products(config)
    else:
        pipeline = build_pipeline(config)
        load_support(pipeline, args.support or config.support.image, args.support_mask or config.support.mask)
        for image, mask in read_negatives(config.support):
            pipeline.add_negative(image, mask)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output directory {args.out}: {exc.strerror}") from None

    stems = [q.stem for q in args.queries]
    if len(set(stems)) != len(stems):
        raise UserError("two query images share a file name stem; their outputs would overwrite each other")
    failures: list[str] = []
    for query in args.queries:
        # One bad query (unreadable, a FIFO, a device) must not lose the others' results: note it and go on.
        try:
            image = read_image(query, "query image")
        except UserError as exc:
            failures.append(str(exc))
            continue
        result = pipeline.segment(image)
        try:
            (args.out / f"{query.stem}.json").write_text(json.dumps(result_to_dict(result, source=str(query))))
        except OSError as exc:
            raise UserError(f"cannot write {args.out / query.stem}.json: {exc.strerror}") from None
        write_image(args.out / f"{query.stem}_mask.png", result.union_mask().astype(np.uint8) * 255)
        write_image(args.out / f"{query.stem}_overlay.jpg", overlay(image, result))
        print(f"{query}: {result.count} objects ({sum(result.timings_ms.values()):.0f} ms)", flush=True)
    written = " (the others were written)" if len(failures) < len(args.queries) else ""
    if len(failures) == 1:
        # One bad query is one line: its own reason.
        raise UserError(failures[0] + written)
    if failures:
        for why in failures:
            log.error("%s", why)
        raise UserError(f"{len(failures)} of {len(args.queries)} query images could not be read{written}")
    return 0
