"""Reading an archive back: its rows, and a frame's image and result, checked whole before they are decoded.

A damaged frame (a file missing or cut short, a result that is not JSON) raises `DamagedFrame`: a replay skips it
and counts it, and goes on with the next.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.archive.layout import check_archive_dir, open_index
from streamer.errors import UserError, first_line

MAX_RESULT_BYTES = 64 * 1024 * 1024  # a result (masks as RLE) of a large, dense frame stays far below
MAX_IMAGE_BYTES = 256 * 1024 * 1024

FRAME_COLUMNS = ("id", "camera", "frame_index", "capture_ts", "image", "result", "count", "match_quality",
                 "truth_count", "truth_kinds", "support_id", "reasons", "marked", "out_of_spec", "rejected")


class DamagedFrame(Exception):
    """A frame of the archive cannot be read whole."""


@dataclass(frozen=True)
class FrameRow:
    id: int
    camera: str
    frame_index: int
    capture_ts: float
    image: str
    result: str
    count: int
    match_quality: float
    truth_count: int | None
    truth_kinds: str | None
    support_id: str
    reasons: str
    marked: int
    out_of_spec: int
    rejected: int

    @property
    def truth(self) -> dict:
        """The simulator's count of each kind of object ({"product": n, "distractor": m}); {} where unknown."""
        try:
            return json.loads(self.truth_kinds) if self.truth_kinds else {}
        except ValueError:
            return {}

    def to_dict(self) -> dict:
        doc = {name: getattr(self, name) for name in FRAME_COLUMNS}
        doc["truth_kinds"] = self.truth or None
        doc["reasons"] = [r for r in self.reasons.split(",") if r]
        return doc


class ArchiveReader:
    """An archive opened for reading (UserError with one line where it is not one, is newer, or its index does
    not open). Thread-safe: one connection, used under a lock."""

    def __init__(self, path: Path | str):
        self.path = check_archive_dir(Path(path), create=False)
        self.db = open_index(self.path, readonly=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _query(self, sql: str, params: tuple = ()) -> list:
        with self._lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise UserError(f"archive {self.path}: the index cannot be read: {first_line(exc)}") from None

    def frames(self, camera: str | None = None, since: float | None = None, until: float | None = None,
               kinds: tuple[str, ...] = (), quality_below: float | None = None, after_id: int = 0,
               limit: int = 10**9) -> list[FrameRow]:
        """The frames (oldest first) matching every filter. kinds: any of "rejects" (a reject or an out-of-spec
        item), "marked", "low_quality" (with quality_below); since/until: capture time, unix seconds."""
        where, params = ["id > ?"], [after_id]
        if camera is not None:
            where.append("camera = ?")
            params.append(camera)
        if since is not None:
            where.append("capture_ts >= ?")
            params.append(float(since))
        if until is not None:
            where.append("capture_ts <= ?")
            params.append(float(until))
        any_of = []
        if "rejects" in kinds:
            any_of.append("(rejected = 1 OR out_of_spec > 0)")
        if "marked" in kinds:
            any_of.append("marked = 1")
        if "low_quality" in kinds:
            any_of.append("(count > 0 AND match_quality < ?)")
            params.append(float(0.5 if quality_below is None else quality_below))
        if any_of:
            where.append("(" + " OR ".join(any_of) + ")")
        rows = self._query(f"SELECT {', '.join(FRAME_COLUMNS)} FROM frames WHERE {' AND '.join(where)} "
                           f"ORDER BY id LIMIT ?", (*params, int(limit)))
        return [FrameRow(*row) for row in rows]

    def frame(self, frame_id: int) -> FrameRow:
        rows = self._query(f"SELECT {', '.join(FRAME_COLUMNS)} FROM frames WHERE id = ?", (int(frame_id),))
        if not rows:
            raise UserError(f"archive {self.path}: no frame {frame_id} (removed by the limits, or never kept)")
        return FrameRow(*rows[0])

    def cameras(self) -> list[str]:
        return [row[0] for row in self._query("SELECT DISTINCT camera FROM frames ORDER BY camera")]

    def audit(self, limit: int = 1000) -> list[dict]:
        rows = self._query("SELECT ts, camera, action, who, old_support, new_support, detail FROM audit "
                           "ORDER BY id DESC LIMIT ?", (int(limit),))
        return [{"ts": r[0], "camera": r[1], "action": r[2], "who": r[3], "old_support": r[4], "new_support": r[5],
                 "detail": json.loads(r[6] or "{}")} for r in rows]

    def image(self, row: FrameRow) -> np.ndarray:
        """The frame as uint8[H, W, 3] RGB; DamagedFrame where its file is missing, cut short or undecodable."""
        return decode_image(self._read(row.image, MAX_IMAGE_BYTES), row.image)

    def result(self, row: FrameRow) -> dict:
        """The frame's recorded result (the bus's header JSON); DamagedFrame where it cannot be read."""
        data = self._read(row.result, MAX_RESULT_BYTES)
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise DamagedFrame(f"{row.result}: not JSON ({first_line(exc)})") from None
        if not isinstance(doc, dict):
            raise DamagedFrame(f"{row.result}: not a result")
        return doc

    def support(self, support_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A recorded support -> (uint8[H, W, 3] RGB image, bool[H, W] mask); UserError where it is not kept."""
        rows = self._query("SELECT image, mask FROM supports WHERE support_id = ?", (support_id,))
        if not rows:
            raise UserError(f"archive {self.path}: support {support_id} is not in the archive; give --support and "
                            "--support-mask")
        try:
            image = decode_image(self._read(rows[0][0], MAX_IMAGE_BYTES), rows[0][0])
            mask = decode_image(self._read(rows[0][1], MAX_IMAGE_BYTES), rows[0][1])[..., 0] > 0
        except DamagedFrame as exc:
            raise UserError(f"archive {self.path}: support {support_id} is damaged: {exc}") from None
        return image, mask

    def _read(self, rel: str, limit: int) -> bytes:
        path = self.path / rel
        try:
            if path.stat().st_size > limit:
                raise DamagedFrame(f"{rel}: larger than {limit} bytes")
            return path.read_bytes()
        except OSError as exc:
            raise DamagedFrame(f"{rel}: {exc.strerror or first_line(exc)}") from None


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """JPEG or PNG bytes -> uint8[H, W, 3] RGB; DamagedFrame where the file is cut short (a JPEG without its end
    marker, a PNG without its IEND chunk: decoders would show a half-grey frame) or does not decode."""
    if data[:2] == b"\xff\xd8":
        whole = data.rstrip(b"\x00").endswith(b"\xff\xd9")
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        whole = data[-8:-4] == b"IEND"  # the last chunk: length 0, "IEND", its CRC
    else:
        raise DamagedFrame(f"{name}: neither JPEG nor PNG")
    if not whole:
        raise DamagedFrame(f"{name}: the file is cut short")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DamagedFrame(f"{name}: does not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
