"""`persense subscribe`: print the counts a running `persense run` publishes; optionally save overlays."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
NOTHING_YET_S = 5.0  # with nothing at all from the endpoint for this long, say what may be wrong (once)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "subscribe",
        help="print the counts published by 'persense run'",
        description="Subscribe to a running 'persense run' and print one line per result "
        "(camera, seq, count, latency; with counting lines also the items passed), and one per tally message "
        "(items passed in the interval and in all, out of spec, zones); gaps in seq are reported at the end. By default it waits for ever "
        "(a subscriber is long-lived); --timeout bounds the wait for each result. Exit status 1 when "
        "--timeout ends it before --max-messages results came.",
    )
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                   help="the processor's publish endpoint (default %(default)s)")
    p.add_argument("--camera", action="append", metavar="NAME", help="only this camera (repeatable; default all)")
    p.add_argument("--save-overlays", type=Path, metavar="DIR",
                   help="write each result's overlay JPEG here (the processor must run with --overlay)")
    p.add_argument("--max-messages", type=int, metavar="N", help="exit after N results (default: never)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="exit when no result came for this many seconds; status messages do not count "
                   "(default: wait for ever)")
    p.add_argument("--status", action="store_true", help="also print status messages (heartbeats, state changes)")
    p.add_argument("--no-tally", dest="tally", action="store_false",
                   help="do not print tally messages (sent where the processor counts items passing a line)")
    p.add_argument("--client-key", type=Path, metavar="FILE",
                   help="CURVE: this client's NAME.key_secret ('persense keys'); its .key must be authorized")
    p.add_argument("--server-public-key", type=Path, metavar="FILE", help="CURVE: the server's public NAME.key")
    p.set_defaults(func=run)


def _note(text: str) -> None:
    # Notes go to stderr so that stdout holds only result (and --status) lines for a pipe to parse.
    print(text, file=sys.stderr)


def _passed_text(header: dict) -> str:
    """' passed=N tracks=M' where the processor counts items crossing a line (stream.tally), else ''."""
    if "passed_total" not in header:
        return ""
    truth = f" truth_passed={header['truth_passed_total']}" if "truth_passed_total" in header else ""
    return f" passed={header['passed_total']}{truth} tracks={header.get('tracks')}"


def _tally_text(msg) -> str:
    """One line for a TallyMessage."""
    truth = f" truth_passed={msg.truth_passed_total}" if msg.truth_passed_total is not None else ""
    zones = "".join(f" zone[{z.name}]: in={z.in_zone} entries={z.entries_total}" for z in msg.zones.values())
    return (f"{msg.camera} tally seq={msg.seq} passed={msg.passed} passed_total={msg.passed_total}{truth} "
            f"measured={msg.measured_total} out_of_spec={msg.out_of_spec_total}{zones}")


def _reject_text(msg) -> str:
    """One line for a RejectMessage."""
    reasons = " ".join(f"{r.get('measure')}={r.get('value')}{r.get('unit') or ''}" for r in msg.reasons)
    return (f"{msg.camera} reject station={msg.station} track={msg.track_id} due_in={msg.due_wall - time.time():.3f}s "
            f"pulse={msg.pulse_ms}ms{' MISSED' if msg.missed else ''} {reasons}")


def run(args: argparse.Namespace) -> int:
    from streamer.errors import UserError, first_line
    from streamer.subscriber import ProtocolError, RejectMessage, ResultMessage, Subscriber, TallyMessage

    if args.max_messages is not None and args.max_messages < 1:
        raise UserError("--max-messages must be at least 1")
    if args.timeout is not None and not args.timeout > 0:  # `not >` also rejects NaN
        raise UserError(f"--timeout must be more than 0 seconds, got {args.timeout}")
    if args.save_overlays:
        try:
            args.save_overlays.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create --save-overlays folder {args.save_overlays}: "
                            f"{exc.strerror or first_line(exc)}") from None
    if (args.client_key is None) != (args.server_public_key is None):
        raise UserError("give both --client-key and --server-public-key (or neither)")
    options = None
    if args.client_key:
        from streamer.stream.security import client_socket_options

        options = client_socket_options(args.client_key, args.server_public_key)
    counts: dict[str, int] = {}
    warned_no_overlay = False
    timed_out = False
    try:
        sub = Subscriber(args.endpoint, args.camera, status=args.status, socket_options=options, tally=args.tally)
    except Exception as exc:  # zmq.ZMQError: a malformed endpoint
        raise UserError(f"cannot subscribe to {args.endpoint}: {first_line(exc)}") from None
    # Said at once: with no processor running, a subscriber otherwise waits in silence.
    _note(f"waiting on {args.endpoint} for results of 'persense run' (Ctrl-C to stop)")
    try:
        # The timeout counts from the last result: status heartbeats (1 s) must not keep a stalled run alive.
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        hint_at = time.monotonic() + NOTHING_YET_S  # once, while nothing at all has come
        while args.max_messages is None or sum(counts.values()) < args.max_messages:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if hint_at is not None:
                until_hint = max(hint_at - time.monotonic(), 0.0)
                left = until_hint if left is None else min(left, until_hint)
            try:
                msg = sub.receive(left)
            except ProtocolError as exc:
                _note(f"skipping a malformed message: {exc}")
                continue
            if msg is not None:
                hint_at = None
            elif deadline is None or time.monotonic() < deadline:
                # The wait ended for the hint, not for --timeout (a poll may wake a moment early: hint when due).
                if hint_at is not None and time.monotonic() >= hint_at - 0.01:
                    _note(f"nothing from {args.endpoint} for {NOTHING_YET_S:g} s: is 'persense run' running and "
                          "publishing there (its log says 'results: subscribe to ...')? Still waiting.")
                    hint_at = None
                continue
            if msg is None:
                _note(f"no result for {args.timeout:g} s; stopping")
                timed_out = True
                break
            if isinstance(msg, TallyMessage):
                print(_tally_text(msg))
                continue
            if isinstance(msg, RejectMessage):
                print(_reject_text(msg))
                continue
            if not isinstance(msg, ResultMessage):
                if args.status:
                    h = msg.header
                    print(f"{msg.camera} status {h.get('event')}: state={h.get('state')} paused={h.get('paused')}")
                continue
            if args.timeout is not None:
                deadline = time.monotonic() + args.timeout
            counts[msg.camera] = counts.get(msg.camera, 0) + 1
            h = msg.header
            latency_ms = (time.time() - h["capture_ts"]) * 1000.0
            # The truth is the simulator's count of the product in force (after a pick, of the kind picked).
            truth = f" truth={h['truth_count']}" if "truth_count" in h else ""
            passed = _passed_text(h)
            reason = f" reason={h['reason'].split(':')[0]}" if h.get("reason") else ""
            print(f"{msg.camera} seq={h['seq']} frame={h['frame_index']} count={h['count']}{truth}{passed} "
                  f"support={h.get('support_id', '?')} latency={latency_ms:.0f}ms{reason}")
            if args.save_overlays:
                data = msg.parts.get("overlay/jpeg")
                if data is not None:
                    path = args.save_overlays / f"{msg.camera}_{h['seq']:08d}.jpg"
                    try:
                        path.write_bytes(data)
                    except OSError as exc:
                        raise UserError(f"cannot write overlay {path}: {exc.strerror or first_line(exc)}") from None
                elif not warned_no_overlay:
                    _note("the processor sends no overlay part: start 'persense run' with --overlay")
                    warned_no_overlay = True
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    for camera, n in sorted(counts.items()):
        print(f"{camera}: {n} result(s), {sub.gaps.get(camera, 0)} missed (seq gaps)")
    received = sum(counts.values())
    if timed_out and args.max_messages is not None and received < args.max_messages:
        _note(f"only {received} of {args.max_messages} result(s) before the timeout")
        return 1
    return 0
