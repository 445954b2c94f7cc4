"""`archive:PATH`: an archive's frames as a source, in the order they were kept, with the simulator's truth where
the frames came from it. Damaged frames are skipped and counted (`corrupt`), like a folder's unreadable images."""

from __future__ import annotations

import time
from pathlib import Path

from streamer.archive.reader import ArchiveReader, DamagedFrame
from streamer.errors import UserError
from streamer.sources.base import Frame, SourceEnded, SourceError
from streamer.sources.corrupt import CorruptCounter
from streamer.sources.pacing import Pacer

_BATCH = 256  # rows read from the index at a time


class ArchiveSource:
    """Args:
        path: the archive directory.
        camera_id: stamped on every frame.
        camera: the recorded camera whose frames are played (None: every camera's, in the order kept).
        realtime: release frames at their recorded pace (gaps capped at 1 s); False: as fast as they are read.
        loop: start again at the first frame at the end.
    """

    live = False

    def __init__(self, path: str | Path, camera_id: str, *, camera: str | None = None, realtime: bool = True,
                 loop: bool = False):
        self.path = Path(path)
        self.camera_id = camera_id
        self.camera = camera
        self.realtime = realtime
        self.loop = loop
        self.corrupt = CorruptCounter(f"archive {self.path}")
        self._reader: ArchiveReader | None = None
        self._rows: list = []
        self._after_id = 0
        self._index = 0
        self._previous_ts: float | None = None
        self._pacer = Pacer(None)

    def support(self) -> tuple:
        """The support in force when the first played frame was kept -> (uint8[H, W, 3] RGB, bool[H, W] mask)."""
        reader = ArchiveReader(self.path)
        try:
            first = reader.frames(camera=self.camera, limit=1)
            if not first:
                raise UserError(f"archive {self.path} holds no frames{f' of camera {self.camera}' if self.camera else ''}")
            return reader.support(first[0].support_id)
        finally:
            reader.close()

    def open(self) -> None:
        self._reader = ArchiveReader(self.path)  # UserError (a configuration error) where it is no archive
        self._rows, self._after_id, self._previous_ts = [], 0, None

    def read(self, timeout: float) -> Frame | None:
        if self._reader is None:
            raise SourceError("archive source is not open")
        while True:
            if not self._rows:
                self._rows = self._reader.frames(camera=self.camera, after_id=self._after_id, limit=_BATCH)
                if not self._rows:
                    if self.loop and self._index > 0:
                        self._after_id, self._previous_ts = 0, None
                        continue
                    raise SourceEnded(f"end of archive {self.path}")
            row = self._rows.pop(0)
            self._after_id = row.id
            try:
                image = self._reader.image(row)
            except DamagedFrame as exc:
                self.corrupt.add(1, str(exc))
                continue
            break
        if self.realtime and self._previous_ts is not None:
            time.sleep(min(max(row.capture_ts - self._previous_ts, 0.0), 1.0, timeout))
        self._previous_ts = row.capture_ts
        truth = row.truth
        frame = Frame(image=image, index=self._index, capture_ts=time.time(), camera=self.camera_id,
                      truth_count=row.truth_count, truth_kinds=truth or None)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
