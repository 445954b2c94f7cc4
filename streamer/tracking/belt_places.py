"""Where a rejected item is on the belt, to know another track of the same item: a pure value, no state.

Positions are belt-plane coordinates (streamer.tracking.belt_plane: millimetres, or pixels uncalibrated); time is
counted in source frames (frame indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BeltPlace:
    """A rejected item in belt coordinates: when it reaches the station, where along it, and its size; and where
    it was last seen, with the belt's velocity there (plane units per source frame; None before it is known)."""

    arrival: float  # source frame index
    across: float  # plane units along the station's line
    size: float  # plane units
    speed: float  # plane units per source frame toward the station
    index: int = 0  # the frame of its last view
    seen: np.ndarray | None = None  # float[2] plane position of its centroid at that view
    belt: np.ndarray | None = None  # float[2] the belt's plane velocity there

    def same_item(self, other: "BeltPlace") -> bool:
        """Two tracks of one item (it was lost and found again, or seen in pieces): within half the larger one's
        size, both along the belt and across it, by their predicted arrivals; or by where each was last seen,
        carried on at the belt's velocity (a track whose views were parts of its item and whole by turns moves
        in jumps, and its own motion can predict its arrival frames off)."""
        reach = max(self.size, other.size) / 2
        if abs(self.arrival - other.arrival) * self.speed < reach and abs(self.across - other.across) < reach:
            return True
        if self.seen is None or other.seen is None or self.belt is None:
            return False
        carried = other.seen + self.belt * (self.index - other.index)
        return bool(np.hypot(*(carried - self.seen)) < reach)
