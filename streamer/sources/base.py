"""The contract between camera sources and the frame loop.

A source delivers frames; a supervisor (streamer.sources.supervisor) owns its life: connect, reconnect
with backoff, stall and frozen-frame detection. The frame loop only ever sees `Frame`s and state changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        image: uint8[H, W, 3] RGB.
        index: the source's frame counter (monotonic per source, restarts are allowed after a reconnect).
        capture_ts: unix seconds when the frame was captured (or received).
        camera: the camera id it came from.
        truth_count: the exact object count where the source knows it (the simulator), else None.
        truth: per-item truth where the source knows it (the flow simulator's
            streamer.simulator.flow.FlowTruth: ids, sizes, and how many items crossed a line), else None.
        truth_kinds: the exact count of each kind of object where the source knows it (the simulator's
            {"product": n, "distractor": m}): after a pick of the other kind, the truth of the product in force.
        truth_scene: the simulator's Scene (its maps made on demand), to tell which kind a picked mask lies on.
    """

    image: np.ndarray
    index: int
    capture_ts: float
    camera: str
    truth_count: int | None = None
    truth: object | None = None
    truth_kinds: dict | None = None
    truth_scene: object | None = None


class SourceError(Exception):
    """A source failed (could not open, stream broke); the supervisor reconnects."""


class SourceEnded(Exception):
    """A finite source (a file without --loop, a folder) has no more frames."""


class FrameSource(Protocol):
    """A camera or file. Not thread-safe: only its supervisor calls it.

    live: True for cameras (the newest frame wins, frames may be dropped); False for files, where the
    loop may opt to process every frame.
    frame_period (optional attribute): seconds between frames where the source sets its own rate (the
    simulator, a camera with a configured fps); the supervisor never calls a gap of two periods a stall.
    corrupt (optional attribute): a streamer.sources.corrupt.CorruptCounter of frames and files the source
    skipped as undecodable; the owner points its `on_count` at metrics.
    """

    live: bool

    def open(self) -> None:
        """Connect; raises SourceError."""
        ...

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None if none came within `timeout` seconds; raises SourceError / SourceEnded."""
        ...

    def close(self) -> None:
        """Release the device or connection; safe to call twice."""
        ...


class SourceState(str, enum.Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"  # open, but no new frame within the stall timeout, or the same frame again and again
    RECONNECTING = "reconnecting"  # failed; waiting out the backoff before the next connect
    ENDED = "ended"  # a finite source finished
    STOPPED = "stopped"
