"""`persense replay ARCHIVE`: the pipeline over an archive's frames; per frame and in total, how the new counts
differ from the recorded ones (and from the simulator's truth where the frames came from it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamer.cli.common import add_config_argument, build_pipeline, config_from_args
from streamer.errors import UserError

TRUTH_KINDS = ("product", "distractor", "none")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay", help="run the pipeline over an archive's frames and compare with what was recorded",
        description="Run the pipeline over the frames of an archive (stream.archive, or 'persense record'), with "
        "the recorded support or another, and print per frame and in total how the new counts differ from the "
        "recorded ones, and from the simulator's truth where the frames came from it. Damaged frames are skipped "
        "and counted.")
    p.add_argument("archive", type=Path, metavar="ARCHIVE", help="the archive directory")
    add_config_argument(p, help="configuration file: engines and pipeline settings (default: the built-in ones)")
    p.add_argument("--support", type=Path, metavar="IMAGE", help="another support image (default: the recorded one)")
    p.add_argument("--support-mask", type=Path, metavar="MASK", help="its object's mask")
    p.add_argument("--truth", choices=TRUTH_KINDS, default=None,
                   help="which of the simulator's kinds of object the support shows, to compare with its truth "
                   "(default: product with the recorded support, none with --support)")
    p.add_argument("--camera", metavar="NAME", help="replay this camera's frames only")
    p.add_argument("--limit", type=int, metavar="N", help="replay the first N frames only")
    p.add_argument("--out", type=Path, metavar="FILE.jsonl", help="write the new results there, one JSON per line")
    p.add_argument("--totals-only", action="store_true", help="print the totals only, not a line per frame")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.archive.reader import ArchiveReader
    from streamer.archive.replay import jsonl_line, replay
    from streamer.imageio import read_image, read_mask

    if (args.support is None) != (args.support_mask is None):
        raise UserError("give both --support IMAGE and --support-mask MASK (or neither: the recorded support)")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    reader = ArchiveReader(args.archive)
    fixed = None
    if args.support is not None:
        fixed = (read_image(args.support, "support image"), read_mask(args.support_mask, "support mask"))
    truth = args.truth or ("product" if fixed is None else "none")
    config = config_from_args(args)
    out = None
    if args.out is not None:
        try:
            out = open(args.out, "w")
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror}") from None
    try:
        pipeline = build_pipeline(config)

        def on_frame(comparison, doc) -> None:
            if not args.totals_only:
                print(comparison.line(), flush=True)
            if out is not None:
                out.write(jsonl_line(doc))

        totals = replay(reader, pipeline, fixed_support=fixed, truth_kind=None if truth == "none" else truth,
                        camera=args.camera, limit=args.limit, on_frame=on_frame)
    finally:
        if out is not None:
            out.close()
        reader.close()
    summary = totals.summary()
    print("total: " + json.dumps(summary), flush=True)
    for why in totals.skipped_why:
        print(f"skipped {why}", file=sys.stderr)
    if totals.frames == 0:
        raise UserError(f"archive {args.archive}: no frame could be replayed ({totals.skipped} damaged)")
    return 0
