"""Counting lines: which side of a directed segment points lie on, and when a track crosses it.

A line is (x0, y0, x1, y1) in pixels. Its forward direction is the normal (y1 - y0, -(x1 - x0)): for a vertical
line drawn top to bottom (y grows down) forward is left to right. Each track is counted once, by the first
observed side it changes away from, so an item that stops on the line, jitters across it or comes back is
never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FORWARD, BACKWARD = "forward", "backward"


def side(points: np.ndarray, line: tuple[float, float, float, float]) -> np.ndarray:
    """float[N, 2] points -> float[N] signed distance (pixels) from the line, > 0 on its forward side."""
    x0, y0, x1, y1 = line
    dx, dy = x1 - x0, y1 - y0
    length = np.hypot(dx, dy)
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return ((p[:, 0] - x0) * dy - (p[:, 1] - y0) * dx) / length


def along(points: np.ndarray, line: tuple[float, float, float, float]) -> np.ndarray:
    """float[N, 2] -> float[N]: the projection onto the segment, 0 at (x0, y0) and 1 at (x1, y1)."""
    x0, y0, x1, y1 = line
    dx, dy = x1 - x0, y1 - y0
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return ((p[:, 0] - x0) * dx + (p[:, 1] - y0) * dy) / (dx * dx + dy * dy)


@dataclass
class LineCounter:
    """Crossings of one line by tracks.

    Attributes:
        line: the segment in pixels.
        margin: a point must lie farther than this (pixels) from the line to be on a side: one that stops on
            the line has no side yet.
    """

    line: tuple[float, float, float, float]
    margin: float = 0.5
    counts: dict[str, int] = field(default_factory=lambda: {FORWARD: 0, BACKWARD: 0})
    _first_side: dict[int, int] = field(default_factory=dict)
    _counted: set[int] = field(default_factory=set)

    def update(self, track_ids: np.ndarray, points: np.ndarray) -> list[tuple[int, str]]:
        """Observed positions of tracks -> [(track_id, direction)] of the tracks that crossed just now."""
        ids = np.asarray(track_ids).reshape(-1)
        if ids.size == 0:
            return []
        distance = side(points, self.line)
        t = along(points, self.line)
        signs = np.where(distance > self.margin, 1, np.where(distance < -self.margin, -1, 0))
        crossed = []
        for ident, sign, where in zip(ids.tolist(), signs.tolist(), t.tolist()):
            if sign == 0 or ident in self._counted:
                continue
            first = self._first_side.setdefault(ident, sign)
            if sign != first and 0.0 <= where <= 1.0:
                direction = FORWARD if sign > 0 else BACKWARD
                self.counts[direction] += 1
                self._counted.add(ident)
                crossed.append((ident, direction))
        return crossed

    def forget(self, track_ids) -> None:
        """Tracks that ended: their state goes (their ids are never reused)."""
        for ident in track_ids:
            self._first_side.pop(ident, None)
            self._counted.discard(ident)
