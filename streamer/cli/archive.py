"""`persense archive export ARCHIVE --since T --until T --out FILE.zip`: a time range of an archive as a zip that is
itself an archive (docs/archive.md)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from streamer.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("archive", help="export a time range of an archive as a zip",
                              description="Export the frames of an archive captured in a time range (with their "
                              "results, supports and audit entries) as a zip that unzips into an archive.")
    p.add_argument("action", choices=("export",), help="export: write the zip")
    p.add_argument("archive", type=Path, metavar="ARCHIVE", help="the archive directory")
    p.add_argument("--since", metavar="TIME", help="from this time: ISO 8601 (UTC unless it names a zone) or unix s")
    p.add_argument("--until", metavar="TIME", help="up to this time (same forms)")
    p.add_argument("--camera", metavar="NAME", help="this camera's frames only")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.zip", help="the zip to write")
    p.set_defaults(func=run)


def parse_time(text: str | None, flag: str) -> float | None:
    """'2026-12-07T14:00:00', '2026-12-07 14:00', '...+01:00' or unix seconds -> unix seconds (naive times: UTC)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag}: {text[:40]!r} is neither an ISO 8601 time nor unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def run(args: argparse.Namespace) -> int:
    from streamer.archive.export import export_zip
    from streamer.archive.reader import ArchiveReader

    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if since is not None and until is not None and since > until:
        raise UserError("--since is after --until")
    reader = ArchiveReader(args.archive)
    try:
        n = export_zip(reader, args.out, since, until, args.camera)
    finally:
        reader.close()
    print(f"exported {n} frame(s) to {args.out}")
    return 0
