"""`persense models list|fetch`: the official checkpoints, and a verified download cache for them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamer.errors import UserError


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="checkpoint cache (default $PERSENSE_MODELS, else ~/.cache/persense/models)")
    parser.add_argument("--catalogue", type=Path, metavar="JSON",
                        help="replace the built-in catalogue (mirrors, tests; default $PERSENSE_CATALOGUE)")


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list and fetch the official model checkpoints",
                                   description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="name, size, licence, whether installed, address")
    listing.add_argument("--details", action="store_true",
                         help="also each model's page, licence text, where its size and checksum come from, and the "
                         "SHA-256 recorded in the cache")
    add_cache_arguments(listing)
    listing.set_defaults(func=run_list)
    fetch = actions.add_parser(
        "fetch", help="download checkpoints into the cache (resumed, verified)",
        description="Download checkpoints into the cache: resumed where a transfer stopped, checked against their "
        "size and SHA-256, renamed to their final name only when complete. Proxies: http_proxy / https_proxy.",
    )
    fetch.add_argument("names", nargs="+", metavar="NAME", help="model names (see `persense models list`)")
    fetch.add_argument("--from", dest="source", type=Path, metavar="FILE",
                       help="install this file (copied in by hand) instead of downloading; verified the same way")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_cache_arguments(fetch)
    fetch.set_defaults(func=run_fetch)


def cache_and_catalogue(args: argparse.Namespace):
    from streamer.models.cache import default_cache_dir
    from streamer.models.catalogue import load_catalogue

    return (args.cache_dir or default_cache_dir()), load_catalogue(args.catalogue)


def run_list(args: argparse.Namespace) -> int:
    from streamer.models.cache import CachedModel

    root, catalogue = cache_and_catalogue(args)
    rows = [(e.name, e.size_text, e.licence, "installed" if CachedModel(e, root).installed() else "-", e.url)
            for e in catalogue]
    widths = [max(len(r[i]) for r in rows + [("NAME", "SIZE", "LICENCE", "STATE", "")]) for i in range(4)]
    for row in [("NAME", "SIZE", "LICENCE", "STATE", "ADDRESS"), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])
    for entry in catalogue:
        if args.details:
            _print_details(CachedModel(entry, root))
        elif entry.manual_hint:
            print(f"{entry.name}: published at {entry.page}; {entry.manual_hint}")
    print(f"cache: {root}")
    return 0


def _print_details(cached) -> None:
    entry, recorded = cached.entry, cached.metadata()
    print(f"\n{entry.name}: {entry.description}")
    details = {
        "page": entry.page,
        "licence": f"{entry.licence} ({entry.licence_url})",
        "size": f"{entry.size_text}; {entry.size_source}",
        "sha256": f"{entry.sha256 or 'not published'}; {entry.checksum_source}",
        "cached sha256": f"{recorded['sha256']} ({recorded.get('sha256_origin')})" if "sha256" in recorded else "-",
        "by hand": entry.manual_hint or f"persense models fetch {entry.name} --from FILE",
    }
    for key, value in details.items():
        print(f"  {key + ':':14} {value}")


def run_fetch(args: argparse.Namespace) -> int:
    from streamer.models.cache import CachedModel
    from streamer.models.download import fetch

    root, catalogue = cache_and_catalogue(args)
    if args.source is not None and len(args.names) != 1:
        raise UserError("--from FILE installs one model: give one NAME")
    entries = [catalogue.get(name) for name in args.names]  # every name checked before any download
    progress = not args.no_progress and sys.stderr.isatty()
    for entry in entries:
        path = fetch(CachedModel(entry, root), source=args.source, progress=progress)
        print(f"{entry.name}: {path}")
    return 0
