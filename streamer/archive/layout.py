"""The archive's layout on disk and its index (SQLite, WAL). docs/archive.md describes both.

    ARCHIVE/archive.json                      {"format": "persense.archive", "version": 1}
    ARCHIVE/index.sqlite (+ -wal, -shm)       tables meta, frames, supports, audit
    ARCHIVE/frames/<camera>/<day>/<id>.jpg    the frame as captured (or .png)
    ARCHIVE/frames/<camera>/<day>/<id>.json   its result: the bus's header JSON (persense.result/1, masks as RLE)
    ARCHIVE/supports/<support_id>.png         each support in force while frames were kept, and its mask
    ARCHIVE/supports/<support_id>.mask.png

A file is written under a temporary name (".tmp" suffix), fsynced and renamed before its row is committed, so
every indexed file is complete; files without a row (a crash between the two) are swept at the next open.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from streamer.errors import UserError, first_line

FORMAT = "persense.archive"
VERSION = 1
MARKER = "archive.json"
INDEX = "index.sqlite"
TMP_SUFFIX = ".tmp"
BLOCK = 4096  # sizes are counted in whole file-system blocks: what a file takes on disk, not its length

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    frame_index INTEGER NOT NULL,
    capture_ts REAL NOT NULL,
    stored_ts REAL NOT NULL,
    image TEXT NOT NULL,
    result TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    count INTEGER,
    match_quality REAL,
    truth_count INTEGER,
    truth_kinds TEXT,
    support_id TEXT NOT NULL,
    reasons TEXT NOT NULL,
    marked INTEGER NOT NULL DEFAULT 0,
    out_of_spec INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS frames_camera_ts ON frames (camera, capture_ts);
CREATE INDEX IF NOT EXISTS frames_stored ON frames (stored_ts);
CREATE TABLE IF NOT EXISTS supports (
    support_id TEXT PRIMARY KEY,
    image TEXT NOT NULL,
    mask TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    stored_ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    camera TEXT,
    action TEXT NOT NULL,
    who TEXT NOT NULL,
    old_support TEXT,
    new_support TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
"""


def disk_bytes(size: int) -> int:
    """A file's length -> the bytes it takes on disk (whole blocks)."""
    return -(-size // BLOCK) * BLOCK


def check_archive_dir(path: Path, create: bool) -> Path:
    """The archive directory at `path`, made when `create` and missing; UserError with one line when it is a file,
    missing, or of a newer version than this program reads."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"archive {path} is a file, not an archive directory")
    marker = path / MARKER
    if not path.exists() or not marker.exists():
        if not create:
            raise UserError(f"archive {path}: not an archive (no {MARKER}); record one with 'persense record' or "
                            "stream.archive")
        try:
            (path / "frames").mkdir(parents=True, exist_ok=True)
            (path / "supports").mkdir(exist_ok=True)
            write_atomic(marker, json.dumps({"format": FORMAT, "version": VERSION}).encode(), fsync=True)
        except OSError as exc:
            raise UserError(f"archive {path}: cannot create it: {exc.strerror or first_line(exc)}") from None
        return path
    try:
        doc = json.loads(marker.read_bytes()[:4096])
        version = int(doc["version"])
        fmt = doc["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"archive {path}: {MARKER} is damaged ({first_line(exc)})") from None
    if fmt != FORMAT:
        raise UserError(f"archive {path}: {MARKER} names format {str(fmt)[:40]!r}, not {FORMAT}")
    if version > VERSION:
        raise UserError(f"archive {path} is of version {version}, newer than this persense reads ({VERSION}); "
                        "upgrade persense")
    return path


def open_index(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """The archive's index (made where missing unless `readonly`); UserError with one line when it does not open."""
    index = Path(path) / INDEX
    if readonly and not index.exists():
        raise UserError(f"archive {path}: no index ({INDEX})")
    try:
        if readonly:
            db = sqlite3.connect(f"file:{index}?mode=ro", uri=True, check_same_thread=False, timeout=5.0)
        else:
            db = sqlite3.connect(index, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            # A committed row survives a crash of the process (WAL + NORMAL); the files it names were fsynced first.
            db.execute("PRAGMA synchronous=NORMAL")
            # The WAL is part of what the archive takes on disk: checkpoint often and truncate it back.
            db.execute("PRAGMA wal_autocheckpoint=64")
            db.execute(f"PRAGMA journal_size_limit={64 * BLOCK}")
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (str(VERSION),))
            db.commit()
        db.execute("SELECT count(*) FROM frames").fetchone()
    except sqlite3.Error as exc:
        raise UserError(f"archive {path}: the index does not open: {first_line(exc)}") from None
    return db


def index_disk_bytes(path: Path) -> int:
    """What the index takes on disk (the database, its WAL and shared-memory file)."""
    total = 0
    for name in (INDEX, INDEX + "-wal", INDEX + "-shm"):
        try:
            total += disk_bytes((Path(path) / name).stat().st_size)
        except FileNotFoundError:
            pass
    return total


def write_atomic(target: Path, data: bytes, fsync: bool) -> None:
    """Write `data` to `target` by a temporary name and a rename: `target` is complete or absent."""
    tmp = target.with_name(target.name + TMP_SUFFIX)
    with open(tmp, "wb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, target)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
