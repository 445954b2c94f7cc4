"""The `persense` command: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Set before numpy loads: OpenBLAS's worker threads spin for ~0.1 s after each call, holding a core that the
# frame loop's other threads need; the per-frame matrix work is small enough for one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from streamer import __version__
from streamer.errors import UserError

# Each module has register(subparsers) that adds its parser with set_defaults(func=run).
SUBCOMMANDS = ("segment", "eval", "run", "subscribe", "bench", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persense",
        description="PerSense Stream: show one example of a product (image + mask), then count and segment "
        "every instance in images or camera streams.",
        epilog="Run 'persense COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"streamer.cli.{name}").register(subparsers)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"persense {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        # Optional runtimes (torch, segment-anything, tensorrt, gi) are imported only by the commands that use them.
        print(
            f"persense {args.command}: error: this needs the Python package '{exc.name}', which is not installed "
            f"(SAM/CounTR export and the torch runtime: pip install 'persense-stream[sam]'; GigE: '[gige]')",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"persense {args.command}: interrupted", file=sys.stderr)
        return 130
