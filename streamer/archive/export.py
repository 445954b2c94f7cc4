"""Exporting a time range of an archive as a zip that is itself an archive: unzipped, `persense replay` and
`archive:PATH` read it (archive.json, an index holding the range's frames, supports and audit entries, their files)."""

from __future__ import annotations

import sqlite3
import tempfile
import zipfile
from pathlib import Path

from streamer.archive.layout import INDEX, MARKER, SCHEMA, VERSION
from streamer.archive.reader import ArchiveReader
from streamer.errors import UserError, first_line

_ALL_COLUMNS = "id, camera, frame_index, capture_ts, stored_ts, image, result, bytes, count, match_quality, " \
               "truth_count, truth_kinds, support_id, reasons, marked, out_of_spec, rejected"


def export_zip(reader: ArchiveReader, out: Path, since: float | None, until: float | None,
               camera: str | None = None) -> int:
    """Write the frames captured in [since, until] (unix s; None: open) to the zip `out` -> how many frames."""
    rows = reader.frames(camera=camera, since=since, until=until)
    ids = [row.id for row in rows]
    supports = sorted({row.support_id for row in rows})
    with tempfile.TemporaryDirectory(prefix="persense-export-") as tmp:
        index = Path(tmp) / INDEX
        db = sqlite3.connect(index)
        try:
            db.executescript(SCHEMA)
            source = reader.db
            with reader._lock:  # the reader's one connection
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    db.executemany(f"INSERT INTO frames ({_ALL_COLUMNS}) VALUES ({','.join('?' * 17)})",
                                   source.execute(f"SELECT {_ALL_COLUMNS} FROM frames WHERE id IN ({marks})",
                                                  chunk).fetchall())
                kept = source.execute(f"SELECT * FROM supports WHERE support_id IN ({','.join('?' * len(supports))})",
                                      supports).fetchall() if supports else []
                db.executemany("INSERT INTO supports VALUES (?, ?, ?, ?, ?)", kept)
                lo, hi = (since if since is not None else float("-inf")), (until if until is not None else float("inf"))
                db.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", source.execute(
                    "SELECT * FROM audit WHERE ts >= ? AND ts <= ?", (lo, hi)).fetchall())
            db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (str(VERSION),))
            db.commit()
        finally:
            db.close()
        try:
            with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as bundle:  # JPEG and PNG are compressed already
                bundle.write(reader.path / MARKER, MARKER)
                bundle.write(index, INDEX)
                for support in kept:
                    for rel in (support[1], support[2]):
                        bundle.write(reader.path / rel, rel)
                for row in rows:
                    for rel in (row.image, row.result):
                        path = reader.path / rel
                        if path.exists():  # removed by the limits meanwhile: the row stays, replay skips it
                            bundle.write(path, rel)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror or first_line(exc)}") from None
    return len(rows)
