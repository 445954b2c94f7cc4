"""Live OpenCV sources: RTSP streams (FFmpeg backend) and USB / V4L2 devices."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from streamer.imageio import to_rgb8
from streamer.sources.base import Frame, SourceError
from streamer.sources.redact import redact

log = logging.getLogger(__name__)

_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# OpenCV reads FFmpeg's demuxer options from one process-wide environment variable at open time; cameras
# with different options open one at a time so each sees its own.
_ENV_LOCK = threading.Lock()


class CaptureSource:
    """Shared read/close of a cv2.VideoCapture; subclasses open it (cameras here, video files in files.py)."""

    live = True

    def __init__(self, camera_id: str, label: str):
        self.camera_id = camera_id
        self.label = label  # what logs and errors call it (credentials redacted)
        self._cap: cv2.VideoCapture | None = None
        self._index = 0

    def read(self, timeout: float) -> Frame | None:
        """Blocks until the next frame (`timeout` is not used): the backend's own read timeout bounds the wait,
        and a read that fails or times out raises SourceError, so the supervisor reconnects."""
        if self._cap is None:
            raise SourceError(f"{self.label} is not open")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise SourceError(f"{self.label}: stream ended or timed out")
        return self._frame(bgr)

    def _frame(self, bgr: np.ndarray) -> Frame:
        """A decoded BGR image -> the next Frame of this source."""
        frame = Frame(image=to_rgb8(bgr), index=self._index, capture_ts=time.time(), camera=self.camera_id)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def ffmpeg_options(transport: str | None, analyzeduration_s: float | None, inherited: str = "") -> str:
    """The OPENCV_FFMPEG_CAPTURE_OPTIONS value: 'key;value|key;value', ours appended to an inherited one."""
    pairs = [p for p in inherited.split("|") if p.strip()]
    if transport:
        pairs.append(f"rtsp_transport;{transport}")
    if analyzeduration_s is not None:
        pairs.append(f"analyzeduration;{int(analyzeduration_s * 1_000_000)}")
    return "|".join(pairs)


class RtspSource(CaptureSource):
    """An RTSP stream through OpenCV's FFmpeg backend.

    Args:
        url: rtsp://[user:password@]host[:port]/path (credentials never reach logs).
        camera_id: stamped on every frame.
        transport: "tcp" (interleaved over the RTSP connection: firewalls, lossy links), "udp", or None
            (FFmpeg's default: UDP, falling back to TCP).
        open_timeout: seconds to connect and read the stream description; a dead server fails within it.
        read_timeout: seconds FFmpeg waits for data; OpenCV retries a read about three times, so a hung
            server fails a read after about 3 x read_timeout (keep that below the supervisor's stall_timeout).
        analyzeduration: seconds FFmpeg probes the stream at open; short keeps reconnects fast.
    """

    def __init__(self, url: str, camera_id: str, *, transport: str | None = None, open_timeout: float = 5.0,
                 read_timeout: float = 1.5, analyzeduration: float | None = 1.0):
        super().__init__(camera_id, redact(url))
        if transport not in (None, "tcp", "udp"):
            raise ValueError(f"rtsp transport must be tcp or udp, got {transport!r}")
        self.url = url
        self.transport = transport
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.analyzeduration = analyzeduration

    def open(self) -> None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000),
        ]
        with _ENV_LOCK:
            inherited = os.environ.get(_FFMPEG_ENV)
            os.environ[_FFMPEG_ENV] = ffmpeg_options(self.transport, self.analyzeduration, inherited or "")
            try:
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
            finally:
                if inherited is None:
                    os.environ.pop(_FFMPEG_ENV, None)
                else:
                    os.environ[_FFMPEG_ENV] = inherited
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.label} (server down, wrong path or credentials, or timeout)")
        self._cap = cap
        self._index = 0
        log.debug("opened %s (transport %s)", self.label, self.transport or "default")


def v4l2_target(spec: str | int) -> int | str:
    """'v4l2:2', 2, '/dev/video2' -> 2 (OpenCV's device index); another device path is passed through."""
    if isinstance(spec, int):
        return spec
    text = spec[len("v4l2:"):] if spec.startswith("v4l2:") else spec
    if text.isdigit():
        return int(text)
    name = Path(text).name
    if name.startswith("video") and name[5:].isdigit() and str(Path(text).parent) == "/dev":
        return int(name[5:])
    return text


class V4l2Source(CaptureSource):
    """A USB / V4L2 camera through OpenCV's V4L2 backend.

    Args:
        device: index, 'v4l2:N' or a device path such as /dev/video0.
        camera_id: stamped on every frame.
        width, height, fps: requested capture mode (the driver picks the nearest it supports).
        fourcc: requested pixel format, e.g. "MJPG" (USB bandwidth for high resolutions).
    """

    def __init__(self, device: str | int, camera_id: str, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, fourcc: str | None = None):
        target = v4l2_target(device)
        super().__init__(camera_id, f"/dev/video{target}" if isinstance(target, int) else str(target))
        self.target = target
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc

    def open(self) -> None:
        if isinstance(self.target, int) and not Path(f"/dev/video{self.target}").exists():
            raise SourceError(f"{self.label} does not exist (camera unplugged?)")
        cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.label} (busy, no permission, or not a capture device)")
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc[:4].ljust(4)))
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap
        self._index = 0
