"""Zones: a polygon in the frame; which tracks are in it now, how long each has been in it, and entries.

A track is in a zone when its centroid is inside the polygon (even-odd rule; a point on an edge may fall either
way). Each track enters a zone at most once: the first time it is seen inside, whether it came in across an edge
or was first seen there; an item that jitters on the edge, leaves and comes back, or is hidden for a while is
one entry. Its time in the zone adds up the time between consecutive views of it that were both inside, so time
while it was hidden inside counts, time it spent outside does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """float[N, 2] points, float[K, 2] polygon vertices (pixels) -> bool[N]: inside by the even-odd rule."""
    p = np.asarray(points, np.float64).reshape(-1, 1, 2)
    a = np.asarray(polygon, np.float64).reshape(1, -1, 2)
    b = np.roll(a, -1, axis=1)
    x, y = p[..., 0], p[..., 1]
    # Edges that straddle the point's row, and whether the row meets them right of the point.
    straddle = (a[..., 1] > y) != (b[..., 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        meet = a[..., 0] + (y - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1])
    return np.count_nonzero(straddle & (x < meet), axis=1) % 2 == 1


def polygon_area(polygon: np.ndarray) -> float:
    """The area of a simple polygon (float[K, 2]), by the shoelace formula."""
    a = np.asarray(polygon, np.float64).reshape(-1, 2)
    b = np.roll(a, -1, axis=0)
    return abs(float(np.sum(a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]))) / 2.0


@dataclass
class ZoneCounter:
    """The tracks in one zone.

    Attributes:
        polygon: float[K, 2] vertices in pixels.
        entries: tracks that have entered since start (each once).
        occupancy: tracks inside at the last update.
    """

    polygon: np.ndarray
    entries: int = 0
    occupancy: int = 0
    _seconds: dict[int, float] = field(default_factory=dict)  # tracks that entered -> their time inside
    _last: dict[int, tuple[float, bool]] = field(default_factory=dict)  # track -> (time, inside) of its last view
    _now: list[int] = field(default_factory=list)

    def update(self, track_ids: np.ndarray, points: np.ndarray, seconds: float) -> list[int]:
        """Tracks' positions at time `seconds` -> the ids that entered just now."""
        ids = np.asarray(track_ids).reshape(-1).tolist()
        flags = inside(points, self.polygon).tolist() if ids else []
        entered = []
        for ident, now_in in zip(ids, flags):
            last = self._last.get(ident)
            if now_in:
                if ident not in self._seconds:
                    self._seconds[ident] = 0.0
                    self.entries += 1
                    entered.append(ident)
                elif last is not None and last[1]:
                    self._seconds[ident] += max(seconds - last[0], 0.0)
            self._last[ident] = (seconds, now_in)
        self._now = [ident for ident, now_in in zip(ids, flags) if now_in]
        self.occupancy = len(self._now)
        return entered

    def in_zone(self) -> dict[int, float]:
        """Tracks inside at the last update -> their time in the zone so far (seconds)."""
        return {ident: self._seconds[ident] for ident in self._now}

    def forget(self, track_ids) -> dict[int, float]:
        """Tracks that ended -> the time in the zone of those that were ever in it (their state goes)."""
        done = {}
        gone = set(track_ids)
        self._now = [ident for ident in self._now if ident not in gone]
        self.occupancy = len(self._now)
        for ident in gone:
            self._last.pop(ident, None)
            if ident in self._seconds:
                done[ident] = self._seconds.pop(ident)
        return done
