"""Finite sources: a video file (OpenCV) and a folder of images. Both may loop and may be paced."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import UserError
from streamer.imageio import MAX_IMAGE_FILE_BYTES, decode_image_bytes, to_rgb8
from streamer.regular_file import check_regular, read_regular
from streamer.sources.base import Frame, SourceEnded, SourceError
from streamer.sources.capture import CaptureSource
from streamer.sources.corrupt import CorruptCounter
from streamer.sources.pacing import Pacer

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})


class VideoFileSource(CaptureSource):
    """Frames of a video file in order.

    Args:
        path: the file.
        camera_id: stamped on every frame.
        loop: start again from the first frame at the end (else SourceEnded).
        realtime: release frames at the file's own frame rate (25 where the file does not say).
        fps: release frames at this rate instead (overrides realtime); None: as fast as they are read.
    """

    live = False

    def __init__(self, path: str | Path, camera_id: str, *, loop: bool = False, realtime: bool = False,
                 fps: float | None = None):
        super().__init__(camera_id, str(path))
        self.path = Path(path)
        self.loop = loop
        self._realtime = realtime
        self._fps = fps
        self._pacer = Pacer(None)
        self.corrupt = CorruptCounter(f"video file {self.path}")
        self._expected = 0  # frames the container says it holds (0: unknown)
        self._this_pass = 0  # frames delivered since the file was (re)opened

    def open(self) -> None:
        self._cap = self._open_capture()
        if self._fps:
            rate = self._fps
        elif self._realtime:
            native = self._cap.get(cv2.CAP_PROP_FPS)
            rate = native if 0 < native < 1000 else 25.0
        else:
            rate = None
        self._pacer = Pacer(rate)

    def _open_capture(self) -> cv2.VideoCapture:
        check_regular(self.path, "video file")  # FFmpeg would block for ever on a FIFO with no writer
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            # The file exists (open_source checked): it is not a video OpenCV can decode; retrying won't help.
            raise UserError(f"cannot decode video file {self.path}")
        self._expected = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        self._this_pass = 0
        return cap

    def _count_missing(self) -> None:
        """At the end of a pass: frames the container announced that never decoded (a truncated file, garbage
        in the middle) are counted as corrupt."""
        missing = self._expected - self._this_pass
        if self._expected and missing > 0:
            self.corrupt.add(missing, f"{missing} of {self._expected} frames did not decode (truncated or corrupt)")

    def read(self, timeout: float) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"video file {self.path} is not open")
        if not self._pacer.wait(timeout):
            return None
        ok, bgr = self._cap.read()
        if not ok:
            if self._index == 0:
                # OpenCV opens some non-videos (a text file named .png) and then reads nothing: that is
                # bad input, not an empty stream that ends a run successfully.
                raise UserError(f"cannot decode any frame of {self.path}")
            self._count_missing()
            if not self.loop:
                raise SourceEnded(f"end of {self.path}")
            self._cap.release()
            self._cap = self._open_capture()
            ok, bgr = self._cap.read()
            if not ok:
                raise SourceEnded(f"{self.path} has no frames")
            log.debug("video %s: looped after %d frames", self.path, self._index)
        self._this_pass += 1
        return self._frame(bgr)


def _natural_key(path: Path) -> list:
    # frame2.png before frame10.png
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, in natural name order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


class ImageFolderSource:
    """The images of a folder in natural name order (frame2 before frame10); unreadable files are skipped
    and counted (`corrupt`).

    Args:
        folder: the directory.
        camera_id: stamped on every frame.
        loop: start again at the first image at the end (else SourceEnded).
        fps: release images at this rate; None: as fast as they are read.
    """

    live = False

    def __init__(self, folder: str | Path, camera_id: str, *, loop: bool = False, fps: float | None = None):
        self.folder = Path(folder)
        self.camera_id = camera_id
        self.loop = loop
        self._fps = fps
        self._files: list[Path] = []
        self._next = 0
        self._index = 0
        self._pacer = Pacer(None)
        self.corrupt = CorruptCounter(f"folder {self.folder}")

    def open(self) -> None:
        self._files = list_images(self.folder)
        if not self._files:
            raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {self.folder}")
        self._next = 0
        self._pacer = Pacer(self._fps)

    def read(self, timeout: float) -> Frame | None:
        if not self._pacer.wait(timeout):
            return None
        tried = 0
        while tried < len(self._files):
            if self._next >= len(self._files):
                if not self.loop:
                    raise SourceEnded(f"end of folder {self.folder}")
                self._next = 0
            path = self._files[self._next]
            self._next += 1
            tried += 1
            image, why = _read_quietly(path)
            if image is None:
                self.corrupt.add(1, why)
                continue
            frame = Frame(image=image, index=self._index, capture_ts=time.time(), camera=self.camera_id)
            self._index += 1
            return frame
        if self._index == 0:
            raise UserError(f"no readable images in folder {self.folder}")
        raise SourceEnded(f"end of folder {self.folder}")

    def close(self) -> None:
        self._files = []


def _read_quietly(path: Path) -> tuple[np.ndarray | None, str]:
    """-> (uint8[H, W, 3] RGB, "") or (None, why it was skipped); the caller counts and logs the skip."""
    try:
        # Only regular files: a FIFO dropped into the folder must not block the camera's thread.
        data = read_regular(path, "image", MAX_IMAGE_FILE_BYTES)
    except UserError as exc:
        return None, str(exc)
    try:
        return to_rgb8(decode_image_bytes(data, "image", source=str(path)), in_place=True), ""
    except UserError as exc:
        return None, str(exc)
