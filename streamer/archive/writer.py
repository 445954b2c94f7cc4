"""The archive's writer thread: files first (temporary name, fsync, rename), then the index row.

The inference thread only queues (`put`): a full queue drops the frame and counts it. The writer keeps the archive
under `max_bytes` by removing the oldest frames *before* a new frame is written (so the limit is never passed, even
for a moment), and removes frames older than `max_age_s`. A full or unwritable disk is reported (the metric
persense_archive_ok, the status, one log line per minute) and the frame is dropped: the line keeps running.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from prometheus_client import Counter, Gauge

from streamer.archive.config import ArchiveConfig
from streamer.archive.layout import (TMP_SUFFIX, check_archive_dir, disk_bytes, fsync_dir, index_disk_bytes,
                                     open_index, write_atomic)
from streamer.errors import first_line

log = logging.getLogger(__name__)

_ERROR_LOG_INTERVAL_S = 60.0
# Room left for the index beyond its present size: a WAL grows up to its checkpoint (64 pages) between our looks.
_INDEX_HEADROOM = 80 * 4096


@dataclass
class ArchivedFrame:
    """One frame to keep. image: uint8[H, W, 3] RGB; header: the result's bus JSON (bytes)."""

    camera: str
    frame_index: int
    capture_ts: float
    image: np.ndarray
    header: bytes | None
    result: object  # the SegmentationResult, encoded on the writer thread when header is None
    encode_header: object  # (result) -> bytes, run on the writer thread
    count: int | None  # None: recorded without processing (persense record)
    match_quality: float | None
    truth_count: int | None
    truth_kinds: dict | None
    support_id: str
    reasons: list[str]
    out_of_spec: int = 0
    rejected: bool = False


@dataclass
class ArchivedSupport:
    support_id: str
    image: np.ndarray  # uint8[H, W, 3] RGB
    mask: np.ndarray  # bool[H, W]


@dataclass
class AuditRow:
    ts: float
    camera: str | None
    action: str
    who: str
    old_support: str | None = None
    new_support: str | None = None
    detail: dict = field(default_factory=dict)


class ArchiveMetrics:
    def __init__(self, registry, cameras: list[str]):
        self.kept = Counter("persense_archive_frames", "frames written to the archive", ["camera"], registry=registry)
        self.dropped = Counter("persense_archive_dropped", "frames the policy kept that the archive could not take "
                               "(writer queue full, or the disk failed)", ["camera"], registry=registry)
        self.removed = Counter("persense_archive_removed", "frames removed by the size or age limit", ["why"],
                               registry=registry)
        self.errors = Counter("persense_archive_errors", "writes that failed (disk full, unwritable)",
                              registry=registry)
        self.ok = Gauge("persense_archive_ok", "1 while the archive writes, 0 after a write failed", registry=registry)
        self.bytes = Gauge("persense_archive_bytes", "what the archive takes on disk", registry=registry)
        for camera in cameras:
            self.kept.labels(camera)
            self.dropped.labels(camera)
        for why in ("size", "age"):
            self.removed.labels(why)
        self.ok.set(1)


class ArchiveWriter:
    """Owns the archive directory, its index connection and the writer thread."""

    def __init__(self, config: ArchiveConfig, metrics: ArchiveMetrics | None = None):
        self.config = config
        self.path = check_archive_dir(config.path, create=True)
        self.db = open_index(self.path)
        self.metrics = metrics
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._lock = threading.Lock()  # the index connection: the writer thread and readers of this process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archive", daemon=True)
        self.error: str | None = None
        self.written = 0
        self.dropped = 0
        self._last_error_log = float("-inf")
        self._sweep()
        self.files_bytes = self._indexed_bytes()
        self._update_bytes()

    # -- any thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def put(self, item, wait: bool = False) -> bool:
        """Queue a frame, a support or an audit row without waiting (with `wait`: until there is room, as a
        recording without a frame loop does) -> whether it was queued (a dropped frame is counted)."""
        try:
            self._queue.put(item, block=wait)
            return True
        except queue.Full:
            if isinstance(item, ArchivedFrame):
                self._count_drop(item.camera)
                return False
            # Supports and audit rows are few and matter: they wait for room (bounded by the writer's pace).
            try:
                self._queue.put(item, timeout=2.0)
                return True
            except queue.Full:
                log.warning("archive: the writer is stuck; a %s record was not kept", type(item).__name__)
                return False

    def status(self) -> dict:
        return {"path": str(self.path), "ok": self.error is None, "error": self.error, "written": self.written,
                "dropped": self.dropped, "bytes": self.files_bytes + index_disk_bytes(self.path),
                "max_bytes": self.config.max_bytes, "queued": self._queue.qsize()}

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to `timeout`), then close the index."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("archive: the writer did not finish within %.0f s", timeout)
            return
        with self._lock:
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.db.close()
            except sqlite3.Error as exc:
                log.warning("archive: closing the index failed: %s", first_line(exc))

    # -- the thread --------------------------------------------------------------------------------------
    def _run(self) -> None:
        next_age_check = 0.0
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._write(item)
                if self.config.max_age_s is not None and time.monotonic() >= next_age_check:
                    next_age_check = time.monotonic() + 10.0
                    self._remove_old()
            except Exception as exc:  # a failing disk (or a bug) must not end the thread: reported, then on
                self._failed(item, exc)
            finally:
                if item is not None:
                    self._queue.task_done()

    def _write(self, item) -> None:
        if isinstance(item, ArchivedFrame):
            self._write_frame(item)
        elif isinstance(item, ArchivedSupport):
            self._write_support(item)
        elif isinstance(item, AuditRow):
            with self._lock:
                self.db.execute("INSERT INTO audit (ts, camera, action, who, old_support, new_support, detail) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (item.ts, item.camera, item.action, item.who, item.old_support, item.new_support,
                                 json.dumps(item.detail)))
                self.db.commit()

    def _write_frame(self, item: ArchivedFrame) -> None:
        image = _encode_image(item.image, self.config.image_format, self.config.jpeg_quality)
        header = item.header if item.header is not None else item.encode_header(item.result)
        size = disk_bytes(len(image)) + disk_bytes(len(header))
        self._make_room(size)
        day = time.strftime("%Y%m%d", time.gmtime(item.capture_ts))
        folder = self.path / "frames" / item.camera / day
        new_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            frame_id = (self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM frames").fetchone()[0])
        stem = f"{frame_id:010d}"
        ext = "jpg" if self.config.image_format == "jpeg" else "png"
        image_path, result_path = folder / f"{stem}.{ext}", folder / f"{stem}.json"
        write_atomic(image_path, image, self.config.fsync)
        write_atomic(result_path, header, self.config.fsync)
        if self.config.fsync:
            fsync_dir(folder)
            if new_folder:
                fsync_dir(folder.parent)
        rel = lambda p: str(p.relative_to(self.path))  # noqa: E731
        with self._lock:
            self.db.execute(
                "INSERT INTO frames (id, camera, frame_index, capture_ts, stored_ts, image, result, bytes, count, "
                "match_quality, truth_count, truth_kinds, support_id, reasons, marked, out_of_spec, rejected) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (frame_id, item.camera, item.frame_index, item.capture_ts, time.time(), rel(image_path),
                 rel(result_path), size, item.count, item.match_quality, item.truth_count,
                 json.dumps(item.truth_kinds) if item.truth_kinds else None, item.support_id,
                 ",".join(item.reasons), int("mark" in item.reasons), int(item.out_of_spec), int(item.rejected)))
            self.db.commit()
        self.files_bytes += size
        self.written += 1
        if self.metrics:
            self.metrics.kept.labels(item.camera).inc()
        self._recovered()
        self._update_bytes()

    def _write_support(self, item: ArchivedSupport) -> None:
        with self._lock:
            if self.db.execute("SELECT 1 FROM supports WHERE support_id = ?", (item.support_id,)).fetchone():
                return
        image = _encode_image(item.image, "png", 0)
        mask = _encode_image(np.asarray(item.mask, np.uint8) * 255, "png", 0)
        size = disk_bytes(len(image)) + disk_bytes(len(mask))
        self._make_room(size)
        folder = self.path / "supports"
        folder.mkdir(exist_ok=True)
        image_path, mask_path = folder / f"{item.support_id}.png", folder / f"{item.support_id}.mask.png"
        write_atomic(image_path, image, self.config.fsync)
        write_atomic(mask_path, mask, self.config.fsync)
        if self.config.fsync:
            fsync_dir(folder)
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO supports VALUES (?, ?, ?, ?, ?)",
                            (item.support_id, f"supports/{image_path.name}", f"supports/{mask_path.name}", size,
                             time.time()))
            self.db.commit()
        self.files_bytes += size
        self._update_bytes()

    # -- bounds --------------------------------------------------------------------------------------------
    def _make_room(self, size: int) -> None:
        """Remove the oldest frames until `size` more bytes fit under max_bytes (the index's share counted)."""
        budget = self.config.max_bytes - index_disk_bytes(self.path) - _INDEX_HEADROOM
        if size > budget:
            raise OSError(f"a frame of {size} bytes does not fit in the archive's limit of {self.config.max_bytes}")
        while self.files_bytes + size > budget:
            if not self._remove_oldest("size", 16):
                break

    def _remove_old(self) -> None:
        cutoff = time.time() - self.config.max_age_s
        while True:
            with self._lock:
                oldest = self.db.execute("SELECT min(stored_ts) FROM frames").fetchone()[0]
            if oldest is None or oldest >= cutoff or not self._remove_oldest("age", 64, cutoff):
                return

    def _remove_oldest(self, why: str, n: int, before_ts: float | None = None) -> int:
        """Remove up to n of the oldest frames (their rows first, then their files) -> how many."""
        cutoff = float("inf") if before_ts is None else float(before_ts)
        with self._lock:
            rows = self.db.execute("SELECT id, image, result, bytes FROM frames WHERE stored_ts < ? ORDER BY id "
                                   "LIMIT ?", (cutoff, n)).fetchall()
            if not rows:
                return 0
            self.db.executemany("DELETE FROM frames WHERE id = ?", [(r[0],) for r in rows])
            self.db.commit()
        for _, image, result, size in rows:
            for rel in (image, result):
                try:
                    (self.path / rel).unlink()
                except FileNotFoundError:
                    pass
            self.files_bytes -= size
        if self.metrics:
            self.metrics.removed.labels(why).inc(len(rows))
        return len(rows)

    def _indexed_bytes(self) -> int:
        with self._lock:
            frames = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM frames").fetchone()[0]
            supports = self.db.execute("SELECT coalesce(sum(bytes), 0) FROM supports").fetchone()[0]
        return int(frames) + int(supports)

    def _sweep(self) -> None:
        """Remove what a crash left: temporary files, and frame files no row names (written, never indexed)."""
        with self._lock:
            named = {p for row in self.db.execute("SELECT image, result FROM frames") for p in row}
            named |= {p for row in self.db.execute("SELECT image, mask FROM supports") for p in row}
        swept = 0
        for sub in ("frames", "supports"):
            for path in (self.path / sub).rglob("*"):
                if path.is_file() and (path.name.endswith(TMP_SUFFIX)
                                       or str(path.relative_to(self.path)) not in named):
                    path.unlink(missing_ok=True)
                    swept += 1
        if swept:
            log.info("archive %s: removed %d file(s) a crash left unindexed", self.path, swept)

    def _update_bytes(self) -> None:
        if self.metrics:
            self.metrics.bytes.set(self.files_bytes + index_disk_bytes(self.path))

    # -- failures ------------------------------------------------------------------------------------------
    def _count_drop(self, camera: str) -> None:
        self.dropped += 1
        if self.metrics:
            self.metrics.dropped.labels(camera).inc()

    def _failed(self, item, exc: Exception) -> None:
        message = f"archive {self.path}: writing failed: {getattr(exc, 'strerror', None) or first_line(exc)}"
        first = self.error is None
        self.error = message
        if isinstance(item, ArchivedFrame):
            self._count_drop(item.camera)
        if self.metrics:
            self.metrics.errors.inc()
            self.metrics.ok.set(0)
        now = time.monotonic()
        if first or now - self._last_error_log >= _ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.error("%s; the line keeps running, frames are not kept until it writes again", message,
                      exc_info=not isinstance(exc, (OSError, sqlite3.Error)))
        try:
            self.db.rollback()
        except sqlite3.Error:
            pass

    def _recovered(self) -> None:
        if self.error is not None:
            log.warning("archive %s: writing again", self.path)
            self.error = None
            if self.metrics:
                self.metrics.ok.set(1)


def _encode_image(image: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
    """uint8[H, W, 3] RGB (or uint8[H, W] grey) -> JPEG or PNG bytes."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if image_format == "jpeg":
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    else:
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"{image_format} encoding failed")
    return data.tobytes()
