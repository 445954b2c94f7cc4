"""`persense keys`: make a CURVE key pair for the control and publish sockets (docs/security.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "keys",
        help="make a CURVE key pair (server or client) for authenticated control and results",
        description="Write DIR/NAME.key (the public key, to hand out) and DIR/NAME.key_secret (readable by its "
        "owner only) in pyzmq's certificate format. Make one pair for the server and one per client; put the "
        "clients' .key files in the folder given to 'persense run --authorized-keys'.",
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="folder for the key files (created if missing)")
    p.add_argument("--name", required=True, metavar="NAME", help="file name of the pair, e.g. server or plc1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamer.stream.security import write_keys

    public, secret = write_keys(args.directory, args.name)
    print(f"public key: {public}")
    print(f"secret key: {secret} (keep it on this machine; mode 600)")
    return 0
