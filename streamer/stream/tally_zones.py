"""One camera's zones in the tally: placed on the frame, updated with the tracks, reported per frame and interval.

streamer.tracking.zones does the geometry and the per-track bookkeeping; this module names the zones, places
them once the frame size is known, and shapes what result headers and tally messages say about them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from streamer.stream.tally_config import ZoneConfig
from streamer.tracking.zones import ZoneCounter

log = logging.getLogger(__name__)

_MAX_DWELL_PER_INTERVAL = 1000  # a tally message lists at most this many tracks' times per zone


@dataclass
class ZoneStep:
    """What one frame did to a zone: tracks that entered, tracks that ended (id -> their seconds in the zone)."""

    name: str
    entered: list[int]
    left: dict[int, float]
    occupancy: int


@dataclass
class _Zone:
    name: str
    config: ZoneConfig
    counter: ZoneCounter | None = None  # made at the first frame, when the frame size is known
    entries: int = 0  # in this interval
    dwell: list[tuple[int, float]] = field(default_factory=list)  # tracks that ended in this interval
    dwell_left_out: int = 0


def place(entries: list, build: Callable[[object], object], camera: str, what: str) -> None:
    """Give each entry (a line or zone: .name, .config, .counter) its counter once the frame size is known:
    `build(config)` makes it, or raises ValueError for one that lies outside the frame, which is reported once
    and left out of `entries`."""
    for entry in list(entries):
        if entry.counter is None:
            try:
                entry.counter = build(entry.config)
            except ValueError as exc:
                log.error("camera %s: %s %s: %s; it counts nothing", camera, what, entry.name, exc)
                entries.remove(entry)


def resolve_zone(config: ZoneConfig, width: int, height: int) -> np.ndarray:
    """float[K, 2] vertices in pixels; ValueError when the zone lies outside a width x height frame."""
    points = np.asarray(config.points, np.float64)
    if config.normalized:
        return points * [width, height]
    if points[:, 0].max() > width or points[:, 1].max() > height:
        raise ValueError(f"zone {config.points} lies outside the {width}x{height} frame")
    return points


class CameraZones:
    """The zones of one camera (config entries for it or for every camera)."""

    def __init__(self, configs: list[ZoneConfig], camera: str):
        self.camera = camera
        mine = [c for c in configs if c.camera in (None, camera)]
        self.zones = [_Zone(c.name or f"zone{i}", c) for i, c in enumerate(mine)]

    def update(self, width: int, height: int, track_ids: np.ndarray, centres: np.ndarray, seconds: float,
               ended: list[int]) -> list[ZoneStep]:
        """One frame's tracks (int[N] ids, float[N, 2] centroids in pixels) at time `seconds`, and the tracks
        that ended -> what happened in each zone."""
        place(self.zones, lambda config: ZoneCounter(resolve_zone(config, width, height)), self.camera, "zone")
        steps = []
        for zone in self.zones:
            entered = zone.counter.update(track_ids, centres, seconds)
            left = zone.counter.forget(ended)
            zone.entries += len(entered)
            for ident, spent in left.items():
                if len(zone.dwell) < _MAX_DWELL_PER_INTERVAL:
                    zone.dwell.append((ident, spent))
                else:
                    zone.dwell_left_out += 1
            steps.append(ZoneStep(zone.name, entered, left, zone.counter.occupancy))
        return steps

    def header(self) -> dict:
        """The result header's `zones`: per zone the tracks in it now with their seconds so far, and entries."""
        return {zone.name: {"in_zone": zone.counter.occupancy, "entries_total": zone.counter.entries,
                            "inside": [{"track_id": ident, "seconds": round(spent, 3)}
                                       for ident, spent in zone.counter.in_zone().items()]}
                for zone in self.zones if zone.counter is not None}

    def take_interval(self) -> dict:
        """The tally message's `zones` for the interval since the last call; the interval restarts."""
        doc = {}
        for zone in self.zones:
            if zone.counter is None:
                continue
            seconds = [spent for _, spent in zone.dwell]
            doc[zone.name] = {
                "in_zone": zone.counter.occupancy,
                "entries": zone.entries,
                "entries_total": zone.counter.entries,
                "dwell": [{"track_id": ident, "seconds": round(spent, 3)} for ident, spent in zone.dwell],
                "dwell_left_out": zone.dwell_left_out,
                "dwell_median_s": round(float(np.median(seconds)), 3) if seconds else None,
            }
            zone.entries, zone.dwell, zone.dwell_left_out = 0, [], 0
        return doc
