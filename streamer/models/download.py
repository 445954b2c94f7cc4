"""Fetch a catalogue entry into the cache: HTTP(S) download with resume, or a copy of a file brought in by hand.

Download: urllib (so http_proxy / https_proxy / no_proxy are honoured), into CACHE/NAME/FILE.partial; an existing
partial file is resumed with an HTTP Range request (a server that ignores Range restarts it from zero). The
finished file is verified (size, SHA-256) and only then renamed to its final name. A failed transfer keeps the
partial file for the next attempt; a file that fails verification is deleted.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Optional

from streamer.errors import UserError
from streamer.regular_file import check_regular
from streamer.models.cache import CachedModel
from streamer.models.catalogue import ModelEntry, human_size

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "persense-stream model fetch"


def fetch(cached: CachedModel, *, source: Optional[Path] = None, progress: bool = True) -> Path:
    """Make `cached` installed: from `source` (a file copied in by hand) or by downloading its URL.

    -> the checkpoint's path. Already installed: nothing is fetched. UserError (one line) on every failure.
    """
    entry = cached.entry
    if source is None and cached.installed():
        log.info("%s is already in the cache: %s", entry.name, cached.path)
        return cached.path
    cached.prepare_folder()
    if source is not None:
        return _install_from_file(cached, Path(source))
    _download(cached, progress)
    try:
        digest = cached.verify(cached.partial, f"the download of {entry.name}")
    except UserError:
        cached.partial.unlink(missing_ok=True)  # corrupt: resuming it would only extend the damage
        raise
    return cached.install(cached.partial, digest, entry.url)


def _install_from_file(cached: CachedModel, source: Path) -> Path:
    if not source.exists():
        raise UserError(f"--from {source}: no such file")
    check_regular(source, "--from")  # a FIFO or a device would block the check below for ever
    digest = cached.verify(source, f"--from {source}")
    _check_free_space(cached, source.stat().st_size)
    # Copied under a temporary name first: the final name only ever holds a complete file.
    try:
        shutil.copyfile(source, cached.partial)
    except OSError as exc:
        raise _write_failure(exc, cached.partial) from None
    return cached.install(cached.partial, digest, f"file {source.resolve()}")


def _download(cached: CachedModel, progress: bool) -> None:
    entry = cached.entry
    have = cached.partial.stat().st_size if cached.partial.exists() else 0
    size = cached.expected_size()
    if size is not None:
        _check_free_space(cached, size - have)
    request = urllib.request.Request(entry.url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        # A fresh opener reads the proxy variables now (urlopen's shared one keeps those of its first use).
        with urllib.request.build_opener().open(request, timeout=TIMEOUT_S) as response:
            have = _resume_point(response, have)
            _refuse_web_page(response, entry)
            total = _total_size(response, have)
            if size is not None and total is not None and total != size:
                raise UserError(f"{entry.url} offers {total} bytes, but {entry.name} is {size} bytes: refusing it")
            _copy_body(response, cached.partial, have, total, entry.name, progress)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The partial file is not a prefix the server can continue (already whole, or longer): start again.
            cached.partial.unlink(missing_ok=True)
            return _download(cached, progress)
        raise UserError(_network_failure(entry, f"HTTP {exc.code} {exc.reason}", cached)) from None
    except (urllib.error.URLError, HTTPException, OSError) as exc:  # OSError: resets, timeouts, TLS
        reason = getattr(exc, "reason", None) or exc
        raise UserError(_network_failure(entry, str(reason) or type(exc).__name__, cached)) from None


def _resume_point(response, have: int) -> int:
    """Where the body starts: `have` for a 206 continuing our partial file, 0 for a whole file."""
    if response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    # "bytes START-END/TOTAL"
    start = content_range.removeprefix("bytes ").split("-", 1)[0]
    if not start.isdigit() or int(start) != have:
        raise UserError(f"the server resumed at {content_range!r}, not at byte {have}: delete the .partial file")
    return have


def _refuse_web_page(response, entry: ModelEntry) -> None:
    if response.headers.get_content_type() == "text/html":
        hint = entry.manual_hint or f"download it from {entry.page}, then `persense models fetch {entry.name} " \
                                    "--from FILE`"
        raise UserError(f"{entry.url} answered with a web page, not the checkpoint: {hint}")


def _total_size(response, start: int) -> Optional[int]:
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _copy_body(response, partial: Path, start: int, total: Optional[int], name: str, progress: bool) -> None:
    """Append the response body to `partial`. Read failures propagate as network errors; write failures become
    one line (the partial file stays, under its partial name)."""
    from tqdm import tqdm

    try:
        out = partial.open("ab" if start else "wb")
    except OSError as exc:
        raise _write_failure(exc, partial) from None
    with out, tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                   disable=not progress) as bar:
        while block := response.read(CHUNK):
            try:
                out.write(block)
            except OSError as exc:
                raise _write_failure(exc, partial) from None
            bar.update(len(block))
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _write_failure(exc, partial) from None
    received = partial.stat().st_size
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def _check_free_space(cached: CachedModel, needed: int) -> None:
    free = shutil.disk_usage(cached.folder).free
    if needed > free:
        raise UserError(f"not enough disk space in {cached.folder} for {cached.entry.name}: needs "
                        f"{human_size(needed)}, {human_size(free)} free")


def _write_failure(exc: OSError, path: Path) -> UserError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"disk full while writing {path}: free some space, then run the command again (a "
                         "download resumes where it stopped)")
    return UserError(f"cannot write {path}: {exc.strerror or exc}")


def _network_failure(entry: ModelEntry, reason: str, cached: CachedModel) -> str:
    kept = cached.partial.stat().st_size if cached.partial.exists() else 0
    resume = f"; {human_size(kept)} kept, run the command again to resume" if kept else ""
    return (f"cannot download {entry.name} from {entry.url}: {reason}{resume}; on a machine without internet, "
            f"copy the file in by hand: persense models fetch {entry.name} --from FILE")
