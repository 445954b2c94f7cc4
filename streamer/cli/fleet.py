"""`persense fleet`: run a fleet of cameras on a Ray cluster (docs/fleet.md), or ask a running fleet.

    persense fleet FLEET.yaml [--address HOST:PORT]     run it until SIGINT/SIGTERM (SIGHUP reloads the file)
    persense fleet status [FLEET.yaml] [--control EP]   camera -> node, state, frames/s, restarts
    persense fleet reload [FLEET.yaml] [--control EP]   make the running cameras those of the file
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

log = logging.getLogger("persense.fleet")

ACTIONS = ("status", "reload")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fleet",
        help="run cameras as a fleet on a Ray cluster (or ask a running fleet: status, reload)",
        description="Run every camera of FLEET.yaml as its own stream processor on a Ray cluster: Ray places them "
        "on nodes by their resources, restarts them when they fail and moves them off a node that leaves. "
        "Subscribers connect once, to the fleet's publish endpoint. 'persense fleet status' and 'persense "
        "fleet reload' ask a running fleet (its control endpoint from FLEET.yaml or --control).",
    )
    p.add_argument("target", metavar="FLEET.yaml|status|reload", help="a fleet file to run, or an action")
    p.add_argument("file", nargs="?", type=Path, metavar="FLEET.yaml", help="for status and reload: the fleet file "
                   "that names the control endpoint")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="the Ray cluster's head (default: fleet.address in the file, else a local Ray)")
    p.add_argument("--control", metavar="ENDPOINT", help="status, reload: the fleet's control endpoint")
    p.add_argument("--json", action="store_true", help="status: print the whole reply as JSON")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="status, reload: how long to wait for the fleet's answer (default %(default)s)")
    p.add_argument("--client-key", type=Path, metavar="FILE", help="CURVE: this client's NAME.key_secret")
    p.add_argument("--server-public-key", type=Path, metavar="FILE", help="CURVE: the fleet's public NAME.key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target in ACTIONS:
        return _ask(args)
    return _run_fleet(Path(args.target), args.address)


def _run_fleet(path: Path, address: str | None) -> int:
    from streamer.fleet.config import load_fleet

    config = load_fleet(path)  # every check that needs no cluster, before connecting to one
    stop, reload_asked = threading.Event(), threading.Event()
    handlers = {signal.SIGINT: lambda *_: stop.set(), signal.SIGTERM: lambda *_: stop.set(),
                signal.SIGHUP: lambda *_: reload_asked.set()}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    fleet = None
    try:
        from streamer.fleet.fleet import Fleet

        fleet = Fleet(config, address=address, reload_source=lambda: load_fleet(path))
        fleet.start()
        # Joining Ray installs Ray's own SIGTERM handler, which ends the process at once: ours again, so that a
        # stop asked for stops the workers and the sockets first.
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        log.info("fleet: %d camera(s); subscribe to %s, control %s", len(config.cameras), fleet.forwarder.publish,
                 fleet.control.endpoint)
        while not stop.wait(0.5):
            if reload_asked.is_set():
                reload_asked.clear()
                _reload(fleet, path)
    finally:
        if fleet is not None:
            fleet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _reload(fleet, path: Path) -> None:
    from streamer.errors import UserError
    from streamer.fleet.config import load_fleet

    try:
        log.info("fleet reloaded: %s", fleet.reload(load_fleet(path)))
    except UserError as exc:  # a bad file leaves the fleet as it was
        log.error("fleet: reload refused: %s", exc)


def _ask(args: argparse.Namespace) -> int:
    import zmq

    from streamer.errors import UserError

    endpoint = args.control
    if endpoint is None:
        if args.file is None:
            raise UserError(f"fleet {args.target} needs the fleet file or --control ENDPOINT")
        from streamer.fleet.config import load_fleet

        endpoint = load_fleet(args.file).fleet.control
    context = zmq.Context()
    try:
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        if args.client_key or args.server_public_key:
            from streamer.stream.security import apply_options, client_socket_options

            if not (args.client_key and args.server_public_key):
                raise UserError("CURVE needs both --client-key and --server-public-key")
            apply_options(sock, client_socket_options(args.client_key, args.server_public_key))
        sock.connect(endpoint)
        sock.send(json.dumps({"cmd": args.target}).encode())
        if not sock.poll(int(args.timeout * 1000)):
            raise UserError(f"no fleet answered at {endpoint} within {args.timeout:g} s")
        reply = json.loads(sock.recv())
    finally:
        context.destroy(linger=0)
    if not reply.get("ok"):
        raise UserError(reply.get("error", "the fleet refused the request"))
    if args.json or args.target != "status":
        print(json.dumps(reply, indent=1))
    else:
        print(status_table(reply))
    return 0


def status_table(reply: dict) -> str:
    """The status reply -> one line per camera: camera, node, state, frames/s, restarts (and why it waits)."""
    lines = [f"{'CAMERA':<20} {'NODE':<24} {'STATE':<14} {'FPS':>6} {'RESTARTS':>8}"]
    for camera, row in sorted(reply.get("cameras", {}).items()):
        # The address, and the start of Ray's node id: several nodes may share a machine (and its address).
        node = f"{row['node']}/{row['node_id'][:6]}" if row.get("node") else "-"
        line = f"{camera:<20} {node:<24} {row['state']:<14} {row['fps']:>6.1f} {row['restarts']:>8}"
        lines.append(line + (f"  ({row['reason']})" if row.get("reason") else ""))
    return "\n".join(lines)

