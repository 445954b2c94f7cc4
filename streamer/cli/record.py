"""`persense record SOURCE --out ARCHIVE`: keep a source's frames in an archive without processing them (to capture
a line and replay it later)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path

from streamer.cli.stopping import stop_on_signals
from streamer.errors import UserError

log = logging.getLogger("persense.record")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "record", help="keep a source's frames in an archive, without processing them",
        description="Read a source (as 'persense run --source' takes it) and keep every frame in an archive, for "
        "'persense replay' or 'persense run --source archive:ARCHIVE'. The simulator's truth is kept with each "
        "frame, and its support as the recorded one.")
    p.add_argument("source", metavar="SOURCE", help="video file, image folder, rtsp://..., v4l2:N, gige:NAME or sim:?...")
    p.add_argument("--out", type=Path, required=True, metavar="ARCHIVE", help="the archive directory (made, or added to)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--format", choices=("jpeg", "png"), default="png",
                   help="how frames are kept (default png: lossless, a replay sees what the camera gave)")
    p.add_argument("--max-mb", type=int, default=2048, metavar="MB", help="the archive's size limit (default 2048)")
    p.add_argument("--camera-id", default="cam0", metavar="NAME", help="the camera's name in the archive")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with stop_on_signals(signal.SIGINT, signal.SIGTERM) as stop:
        return _record(args, stop)


def _record(args: argparse.Namespace, stop: threading.Event) -> int:
    from streamer.archive.config import ArchiveConfig
    from streamer.archive.writer import ArchivedFrame, ArchivedSupport, ArchiveWriter
    from streamer.persense.frames import support_id_for
    from streamer.sources import SourceEnded, SourceError, open_source

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    if args.seconds is not None and not args.seconds > 0:
        raise UserError("--seconds must be more than 0")
    config = ArchiveConfig(enabled=True, path=args.out, image_format=args.format, max_bytes=args.max_mb * 2**20,
                           max_age_s=None)
    source = open_source(args.source, args.camera_id)
    writer = ArchiveWriter(config)
    support_id = "none"
    if hasattr(source, "support"):
        image, mask = source.support()
        support_id = support_id_for(image, mask, "recorded")
        writer.put(ArchivedSupport(support_id, image, mask), wait=True)
    writer.start()
    kept, started = 0, time.monotonic()
    try:
        source.open()
    except SourceError as exc:
        raise UserError(f"cannot open {args.source}: {exc}") from None
    try:
        while not stop.is_set():
            if args.max_frames is not None and kept >= args.max_frames:
                break
            if args.seconds is not None and time.monotonic() - started >= args.seconds:
                break
            try:
                frame = source.read(1.0)
            except SourceEnded:
                break
            except SourceError as exc:
                raise UserError(f"{args.source}: {exc}") from None
            if frame is None:
                continue
            header = {"schema": "persense.record/1", "camera": args.camera_id, "frame_index": int(frame.index),
                      "capture_ts": round(float(frame.capture_ts), 6), "support_id": support_id}
            writer.put(ArchivedFrame(args.camera_id, int(frame.index), float(frame.capture_ts), frame.image,
                                     _json(header), None, None, None, None, frame.truth_count, frame.truth_kinds,
                                     support_id, ["recorded"]), wait=True)
            kept += 1
    finally:
        source.close()
        writer.stop(timeout=60.0)
    status = writer.status()
    print(f"recorded {status['written']} frame(s) into {args.out} ({status['bytes'] / 2**20:.1f} MB"
          f"{'; ' + status['error'] if status['error'] else ''})")
    return 0 if status["error"] is None else 2


def _json(doc: dict) -> bytes:
    import json

    return json.dumps(doc, separators=(",", ":")).encode()
