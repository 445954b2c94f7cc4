"""When a tracked item reaches a line: its own motion on the belt plane, the source's frame clock, and the
crossing time of a line. Pure numpy: streamer.stream.rejects uses them for reject stations.

Positions are belt-plane coordinates (streamer.tracking.belt_plane: millimetres, or pixels uncalibrated); time
is counted in source frames (frame indices), which the FrameClock turns into capture times.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

CLOCK_FRAMES = 256  # (index, capture time) pairs the frame period is measured over
MIN_FIT_FRAMES = 12  # a track's own motion once its whole views span this many source frames (else the belt's)


def frames_to_line(points: np.ndarray, velocities: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """float[N, 2] plane positions moving at float[N, 2] plane units per source frame -> float[N] source frames
    until each crosses the (infinite) line through p0 and p1: negative once past it, NaN when it moves along it."""
    direction = np.asarray(p1, np.float64) - np.asarray(p0, np.float64)
    normal = np.array([direction[1], -direction[0]]) / np.hypot(*direction)
    distance = (np.asarray(p0, np.float64) - np.asarray(points, np.float64).reshape(-1, 2)) @ normal
    speed = np.asarray(velocities, np.float64).reshape(-1, 2) @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(speed) > 1e-9, distance / speed, np.nan)


def exit_edge_pixels(edge: str, width: int, height: int) -> np.ndarray:
    """The frame's edge the belt leaves by -> float[2, 2] its end points in pixels."""
    corners = {"right": ((width, 0), (width, height)), "left": ((0, 0), (0, height)),
               "top": ((0, 0), (width, 0)), "bottom": ((0, height), (width, height))}
    return np.array(corners[edge], np.float64)


class FrameClock:
    """Source frame index -> capture time (unix seconds), from the frames seen lately: the frame period is the
    slope over the last CLOCK_FRAMES processed frames, so skipped frames and a late start do not matter."""

    def __init__(self):
        self._frames: deque[tuple[int, float]] = deque(maxlen=CLOCK_FRAMES)

    def add(self, index: int, capture_ts: float) -> None:
        if self._frames and index <= self._frames[-1][0]:
            self._frames.clear()  # the source restarted its counter
        self._frames.append((index, capture_ts))

    @property
    def period(self) -> float | None:
        """Seconds per source frame, None before two frames."""
        if len(self._frames) < 2:
            return None
        (i0, t0), (i1, t1) = self._frames[0], self._frames[-1]
        return (t1 - t0) / (i1 - i0)

    def gap(self) -> int:
        """Source frames between the last two processed frames (1 before two)."""
        return self._frames[-1][0] - self._frames[-2][0] if len(self._frames) >= 2 else 1

    def time_of(self, index: float) -> float | None:
        """The capture time of (fractional) frame `index`, interpolated between the frames seen or extrapolated
        at the period beyond them; None before two frames."""
        period = self.period
        if period is None:
            return None
        indices = np.array([i for i, _ in self._frames], np.float64)
        times = np.array([t for _, t in self._frames])
        if indices[0] <= index <= indices[-1]:
            return float(np.interp(index, indices, times))
        anchor = 0 if index < indices[0] else -1
        return float(times[anchor] + (index - indices[anchor]) * period)


@dataclass
class TrackMotion:
    """What a reject decision needs of one track: its last view, its mask scores, and a least-squares line
    through its whole views' plane positions against the frame index (its own motion, free of the centroid's
    jitter and of the partial views at the frame's edges)."""

    index: int  # frame index of its last view
    centre: np.ndarray  # float[2] pixels, at that view
    score_sum: float = 0.0
    views: int = 0
    truth_id: int | None = None
    origin: int | None = None  # frame index of its first whole view; the fit's indices count from it
    sums: np.ndarray = field(default_factory=lambda: np.zeros(7))  # n, Σi, Σi², Σx, Σy, Σix, Σiy

    def add_whole(self, index: int, position: np.ndarray) -> None:
        if self.origin is None:
            self.origin = index
        i = float(index - self.origin)
        x, y = position
        self.sums += (1.0, i, i * i, x, y, i * x, i * y)

    def fitted(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(float[2] plane position at frame `index`, float[2] plane velocity per source frame) from the whole
        views, or None while they span fewer than MIN_FIT_FRAMES source frames."""
        n, si, sii, sx, sy, six, siy = self.sums
        spread = n * sii - si * si
        if n < 3 or spread <= 0 or (n * sii - si * si) / (n * n) < (MIN_FIT_FRAMES / 4) ** 2:
            return None
        velocity = (n * np.array([six, siy]) - si * np.array([sx, sy])) / spread
        intercept = (np.array([sx, sy]) - velocity * si) / n
        return intercept + velocity * (index - self.origin), velocity
