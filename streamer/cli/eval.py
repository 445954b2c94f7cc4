"""`persense eval`: the paper's metrics on a PerSense-D style folder."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from streamer.cli.common import add_config_argument, build_pipeline, config_from_args
from streamer.errors import UserError
from streamer.evaluation import Report, discover, read_count
from streamer.imageio import read_image, read_mask

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="class-wise mIoU, count MAE and density buckets on a PerSense-D style folder",
        description="Evaluate on DIR/Images/<class>/: 00.jpg + 00.png is each class's support, NN.jpg + NN.png "
        "the queries and their ground-truth masks; NN.json ({'count': n} or {'points': [...]}) or NN.txt (dots) give "
        "ground-truth counts where available. Prints a JSON summary.",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset root")
    add_config_argument(parser)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the summary and per-image scores here")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N queries per class (a quick check)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    if args.json is not None and args.json.is_dir():
        raise UserError(f"--json {args.json} is a directory")
    classes = discover(args.data)
    pipeline = build_pipeline(config_from_args(args))
    report = Report()
    for klass in classes:
        pipeline.set_support(read_image(klass.support_image, "support image"), read_mask(klass.support_mask, "support mask"))
        queries = klass.queries[: args.limit]
        for query in queries:
            image = read_image(query.image, "query image")
            truth = read_mask(query.mask, "ground-truth mask")
            if truth.shape != image.shape[:2]:
                raise UserError(f"ground-truth mask {query.mask} is not the size of {query.image}")
            result = pipeline.segment(image)
            report.add(klass.name, query.image.name, result.union_mask(), truth, result.count, read_count(query.count_file))
        log.info("%s: IoU %.4f over %d images", klass.name, report.class_iou().get(klass.name, float("nan")), len(queries))
    summary = report.summary()
    print(json.dumps(summary, indent=2))
    if args.json:
        detail = [vars(s) | {"iou": s.iou} for s in report.images]
        try:
            args.json.write_text(json.dumps({"summary": summary, "images": detail}, indent=2))
        except OSError as exc:
            raise UserError(f"cannot write {args.json}: {exc.strerror}") from None
    return 0
