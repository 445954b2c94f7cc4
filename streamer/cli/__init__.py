"""The `persense` command: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import signal
import sys
import threading

# Set before numpy loads: OpenBLAS's worker threads spin for ~0.1 s after each call, holding a core that the
# frame loop's other threads need; the per-frame matrix work is small enough for one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Set before OpenCV loads: it and FFmpeg print their own lines about a camera that does not answer or a file that
# does not decode ahead of ours, which say the same in one line (set these to see them again).
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

from streamer import __version__
from streamer.errors import UserError, first_line

# Each module has register(subparsers) that adds its parser with set_defaults(func=run).
SUBCOMMANDS = ("segment", "eval", "run", "subscribe", "bench", "export", "support", "keys", "models", "setup",
               "fleet", "replay", "record", "archive", "calibrate")


def _add_logging_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="debug log output")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="only warnings and errors")


def _subparsers_of(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _subparsers_of(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persense",
        description="PerSense Stream: show one example of a product (image + mask), then count and segment "
        "every instance in images or camera streams.",
        epilog="Run 'persense COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_logging_flags(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"streamer.cli.{name}").register(subparsers)
    # -v / -q also after the command (`persense run -v`); SUPPRESS keeps the top-level value when not given there.
    for sub in _subparsers_of(parser):
        _add_logging_flags(sub, default=argparse.SUPPRESS)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # The plant's protocol libraries narrate their own workings (asyncua: a line per standard node at start);
    # their warnings still show, and -v shows everything.
    for chatty in ("asyncua", "pymodbus"):
        logging.getLogger(chatty).setLevel(level if verbose else max(level, logging.WARNING))


# Packages that only some commands need; a missing one is an install step, not a bug.
OPTIONAL_PACKAGES = {
    "torch": "sam", "torchvision": "sam", "segment_anything": "sam", "onnx": "sam", "onnxscript": "sam",
    "ray": "fleet", "tensorrt": "a TensorRT install", "gi": "gige", "pycuda": "a CUDA install", "cuda": "a CUDA install",
    "paho": "mqtt", "asyncua": "opcua", "pymodbus": "modbus",
}


class Terminated(BaseException):
    """SIGTERM before a command installed its own handling (BaseException: no `except Exception` swallows it)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    # First, before the imports that take a moment: SIGTERM becomes an exception main turns into a clean exit,
    # so a stop asked for while starting never kills the process by the signal. `run` replaces this handler
    # with its own (a stop event), other commands keep it.
    # (Only the main thread may install handlers; tests call main from others.)
    # SIGHUP (the terminal or ssh session closed) is handled alike.
    armed = threading.current_thread() is threading.main_thread()
    stops = (signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in stops} if armed else {}
    try:
        return _main(argv)
    except Terminated as exc:
        command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), "")
        if command == "run":
            return 0  # nothing was started yet, or run's own handler has already stopped it
        print(f"persense {command}: terminated", file=sys.stderr)
        return 128 + int(exc.args[0] if exc.args else signal.SIGTERM)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# "-5,50" after an option is its value, not an option: argparse takes only plain negative numbers ("-5") for
# values, and answered `--point -5,50` with "expected one argument" (the range check's message never came).
_NEGATIVE_LIST = re.compile(r"^-\d*\.?\d+(,-?\d*\.?\d+)+$")


def _join_negative_values(argv: list[str]) -> list[str]:
    """["--point", "-5,50"] -> ["--point=-5,50"]: a comma list of numbers starting with a minus is a value."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    name = " ".join(p for p in (args.command, getattr(args, "model", None)) if p)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"persense {name}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in OPTIONAL_PACKAGES:
            raise  # our own import is broken: that is a bug to see in full
        extra = OPTIONAL_PACKAGES[top]
        hint = f"pip install 'persense-stream[{extra}]'" if extra in ("sam", "gige", "fleet") else f"needs {extra}"
        print(f"persense {name}: error: this needs the Python package '{top}', which is not installed ({hint})",
              file=sys.stderr)
        return 2
    except OSError as exc:
        # Files and sockets the user named: one line, never a traceback.
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"persense {name}: error:{where} {exc.strerror or first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"persense {name}: interrupted", file=sys.stderr)
        return 130
