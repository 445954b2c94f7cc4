"""Reject events: which items a reject station must remove, and when each reaches it.

Per camera and station (stream.tally.rejects), on the inference thread after the tally has measured a frame:
an item's time comes when it has `decide_after` whole views, when it is about to reach the station (the next
processed frame may come too late; coasting tracks, out of view, included), or when its track ends; one not yet
seen whole waits for a whole view. Its figures (as the tally's: the median over its whole views that show all
of it) are checked against the tally's specs, and optionally its match quality against a minimum: an item that
fails is a reject, once; one in spec is judged again as its views kept grow until it nears the station or its
track ends. A piece of another track's item (smaller, seen whole less often, its centre within that item's disc) and
a second track of an item rejected already (found again) are known by their place on the belt and left out.
Its arrival at the station is predicted on the belt plane (streamer.tracking.belt_plane) from the item's own
motion (streamer.tracking.arrival.TrackMotion), or its last position and the tracked belt velocity before it
has enough views, and the source's frame period; the pulse is due `lead_ms` before the arrival. A decision whose
due time has passed is a missed reject: published and counted all the same (`missed: true`), never dropped.
Where the source knows the truth (the flow simulator), the arrival the simulator reports is compared with the
prediction once a frame at or after it has come.

No sockets or metrics here (streamer.stream.tally_sink sends and counts).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from streamer.sources.base import Frame
from streamer.stream.tally_config import RejectStationConfig, SpecRange
from streamer.tracking.arrival import FrameClock, TrackMotion, exit_edge_pixels, frames_to_line
from streamer.tracking.belt_plane import BeltPlane
from streamer.tracking.belt_places import BeltPlace
from streamer.tracking.measure import AREAS, COLUMN, LENGTHS, as_dict

log = logging.getLogger(__name__)

REJECT_VERSION = 1
_MAX_PENDING_TRUTH = 4096  # rejects waiting for their true arrival (simulator only)
_NEAR_GAPS = 2.0  # decide an item this many processed-frame gaps before it reaches the station
# An item in spec is judged again once its views kept have grown by this factor since: a few times over a track,
# not at every view (that tripled the stations' cost per frame at 40 items: 1.96 -> 4.84 ms).
_REJUDGE_GROWTH = 1.25
_RECENT_DECISIONS = 512  # rejected items per station remembered, to tell a second track of one item


def station_line(config: RejectStationConfig, plane: BeltPlane, width: int, height: int) -> np.ndarray:
    """A station -> float[2, 2] two points of its line in the belt plane; ValueError when it lies outside the
    frame or needs millimetres the plane does not have."""
    if config.line is not None:
        x0, y0, x1, y1 = config.line
        if config.normalized:
            x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
        elif max(x0, x1) > width or max(y0, y1) > height:
            raise ValueError(f"line {config.line} lies outside the {width}x{height} frame")
        return plane.to_plane(np.array([[x0, y0], [x1, y1]]))
    if not plane.calibrated:
        raise ValueError("downstream_mm needs a calibration in millimetres")
    edge = plane.to_plane(exit_edge_pixels(config.exit_edge, width, height))
    direction = edge[1] - edge[0]
    normal = np.array([direction[1], -direction[0]]) / np.hypot(*direction)
    centre = plane.to_plane(np.array([[width / 2, height / 2]]))[0]
    if (edge[0] - centre) @ normal < 0:
        normal = -normal  # outward, away from the frame
    return edge + config.downstream_mm * normal


def check_stations(tally, camera: str, size: tuple[int, int] | None) -> None:
    """ValueError naming the first reject station of `camera` (stream.tally's) that lies outside its frame, where the
    frame's size is known before the first frame: `size`, else the one the camera's calibration was made for."""
    calibration = tally.calibration_of(camera)
    size = size or calibration.image_size
    if size is None:
        return
    plane = BeltPlane.from_config(calibration)
    for index, config in enumerate(tally.rejects):
        if config.camera in (None, camera):
            try:
                station_line(config, plane, *size)
            except ValueError as exc:
                raise ValueError(f"reject station {config.name or f'reject{index}'}: {exc}") from None


def reasons_for(figures: dict[str, float | None], specs: dict[str, SpecRange], units: str) -> list[dict]:
    """The spec'd measurements an item's figures fall outside -> the message's reasons (none: in spec or unknown)."""
    reasons = []
    for name, spec in specs.items():
        value = figures.get(name)
        if value is None:
            continue
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            unit = units if name in LENGTHS else f"{units}2" if name in AREAS else "deg" if name == "orientation" else ""
            reasons.append({"measure": name, "value": value, "min": spec.min, "max": spec.max, "unit": unit})
    return reasons


@dataclass
class RejectEvent:
    """One decided reject (the `persense/<camera>/reject` message, docs/stream-protocol.md)."""

    camera: str
    frame_id: int
    track_id: int
    station: str
    reasons: list[dict]
    decided_wall: float
    due_wall: float
    due_mono: float
    pulse_ms: int
    missed: bool
    arrival_wall: float
    lead_ms: int
    truth_id: int | None = None

    def to_dict(self) -> dict:
        doc = {"v": REJECT_VERSION, "camera": self.camera, "frame_id": self.frame_id, "track_id": self.track_id,
               "station": self.station, "reasons": self.reasons, "decided_wall": round(self.decided_wall, 6),
               "due_wall": round(self.due_wall, 6), "due_mono": round(self.due_mono, 6), "pulse_ms": self.pulse_ms,
               "missed": self.missed, "arrival_wall": round(self.arrival_wall, 6), "lead_ms": self.lead_ms}
        if self.truth_id is not None:
            doc["truth_id"] = self.truth_id
        return doc


@dataclass
class _Station:
    name: str
    config: RejectStationConfig
    line: np.ndarray | None = None  # float[2, 2] in the plane, once the frame size is known
    decided: set[int] = field(default_factory=set)
    judged: dict[int, int] = field(default_factory=dict)  # track -> its views kept (or seen) when judged
    recent: deque = field(default_factory=lambda: deque(maxlen=_RECENT_DECISIONS))


class CameraRejects:
    """The reject stations of one camera. Args: configs: every station (those of other cameras are left out);
    plane: the camera's belt plane; wall_clock, mono_clock: now in unix and monotonic seconds (tests replay
    frames at their own pace)."""

    def __init__(self, configs: list[RejectStationConfig], camera: str, plane: BeltPlane,
                 wall_clock: Callable[[], float] = time.time, mono_clock: Callable[[], float] = time.monotonic):
        self.camera, self.plane = camera, plane
        self.wall_clock, self.mono_clock = wall_clock, mono_clock
        mine = [c for c in configs if c.camera in (None, camera)]
        self.stations = [_Station(c.name or f"reject{i}", c) for i, c in enumerate(mine)]
        self.clock = FrameClock()
        self._tracks: dict[int, TrackMotion] = {}
        self._pending_truth: list[tuple[RejectEvent, float]] = []
        self.arrival_errors: list[tuple[str, float]] = []  # (station, predicted - true arrival, s) resolved lately
        self._size: tuple[int, int] | None = None

    def _place(self, width: int, height: int) -> None:
        if self._size == (width, height):
            return
        self._size = (width, height)
        for station in list(self.stations):
            try:
                station.line = station_line(station.config, self.plane, width, height)
            except ValueError as exc:
                log.error("camera %s: reject station %s: %s; it rejects nothing", self.camera, station.name, exc)
                self.stations.remove(station)

    def update(self, frame: Frame, width: int, height: int, ids: np.ndarray, centres: np.ndarray, whole: np.ndarray,
               scores: np.ndarray, samples: dict, specs: dict[str, SpecRange], ended: list[int],
               velocity: np.ndarray | None) -> list[RejectEvent]:
        """One tallied frame: int[N] track ids, float[N, 2] centroids (pixels), bool[N] whole views (not cut by
        the frame's edge) and float[N] mask scores of its instances; samples: track id ->
        streamer.stream.tally.ItemFigures; velocity: float[2] belt pixels per source frame (None: not known yet)
        -> the rejects decided now. Call before the ended tracks' samples go."""
        if not self.stations:
            return []
        self._place(width, height)
        self.clock.add(frame.index, frame.capture_ts)
        truth_ids = _truth_ids(frame.truth, centres)
        positions = self.plane.to_plane(centres)
        for k, ident in enumerate(ids.tolist()):
            track = self._tracks.get(ident)
            if track is None:
                track = self._tracks[ident] = TrackMotion(frame.index, centres[k])
            track.index, track.centre = frame.index, centres[k]
            track.score_sum += float(scores[k])
            track.views += 1
            if whole[k]:
                track.add_whole(frame.index, positions[k])
            if truth_ids is not None and truth_ids[k] >= 0:
                track.truth_id = int(truth_ids[k])
        events = []
        gone = set(ended)
        # Every live track, those coasting unseen too: an item that left the frame may near a station beyond it.
        candidates = list(self._tracks)
        motions = {ident: self._motion(self._tracks[ident], velocity) for ident in candidates}
        period = self.clock.period
        # The time this frame took to get here (inference, queues): the next processed frame comes that much later.
        late_frames = max(self.wall_clock() - frame.capture_ts, 0.0) / period if period else 0.0
        for station in self.stations:
            pending = [ident for ident in candidates if ident not in station.decided]
            to_go = self._frames_to_go(station, pending, motions, frame.index)
            for ident, frames in zip(pending, to_go.tolist()):
                event = self._consider(station, ident, frame, samples, specs, ident in gone, velocity,
                                       motions[ident], frames, late_frames)
                if event is not None:
                    events.append(event)
        for ident in gone:
            self._tracks.pop(ident, None)
            for station in self.stations:
                station.decided.discard(ident)
                station.judged.pop(ident, None)
        self._resolve_truth(frame)
        return events

    def _motion(self, track: TrackMotion, velocity: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(plane position at its last view, plane velocity per source frame): the track's own fit where its
        whole views span enough frames, else its last centroid moving at the belt's velocity; None without
        either."""
        fitted = track.fitted(track.index)
        if fitted is not None:
            return fitted
        if velocity is None:
            return None
        position = self.plane.to_plane(track.centre[None])
        return position[0], (self.plane.to_plane(track.centre[None] + np.asarray(velocity)[None]) - position)[0]

    def _frames_to_go(self, station: _Station, idents: list[int], motions: dict, index: int) -> np.ndarray:
        """float[N]: source frames from frame `index` until each track's item reaches the station (NaN without a
        motion or a frame period yet), all tracks in one pass."""
        to_go = np.full(len(idents), np.nan)
        moving = [k for k, ident in enumerate(idents) if motions[ident] is not None]
        if moving and self.clock.period:
            points = np.array([motions[idents[k]][0] for k in moving])
            velocities = np.array([motions[idents[k]][1] for k in moving])
            last_views = np.array([self._tracks[idents[k]].index for k in moving])
            to_go[moving] = frames_to_line(points, velocities, *station.line) - (index - last_views)
        return to_go

    def _consider(self, station: _Station, ident: int, frame: Frame, samples: dict, specs, ended: bool,
                  velocity: np.ndarray | None, motion: tuple[np.ndarray, np.ndarray] | None, frames_to_go: float,
                  late_frames: float) -> RejectEvent | None:
        """Decide item `ident` at `station` if its time has come -> its reject, or None (in spec, not yet, a
        piece of another track's item, a second track of an item rejected already, or never measured).
        motion: `_motion`'s; frames_to_go: `_frames_to_go`'s; late_frames: this frame's age in source frames."""
        track = self._tracks[ident]
        item = samples.get(ident)
        views = item.shapes.views if item is not None else 0  # whole views: what it is measured by
        minimum = station.config.min_match_quality
        # Its match quality is every view's (a foreign object's masks score too low to be measured at all).
        seen = max(views, track.views) if minimum is not None else views
        period = self.clock.period
        lead_frames = station.config.lead_ms / 1000.0 / period if period else 0.0
        near = (math.isfinite(frames_to_go)
                and frames_to_go - lead_frames - late_frames <= _NEAR_GAPS * self.clock.gap())
        if not (ended or near or seen >= station.config.decide_after):
            return None
        if not math.isfinite(frames_to_go) and not ended:
            return None  # no prediction yet (belt velocity unknown or along the station): wait
        if not seen:
            return None  # not seen whole yet (judged at a later view, late or not) or never: nothing to judge by
        final = ended or near
        basis = item.shapes.kept if views else track.views  # what it is judged on: views kept (or seen)
        last = station.judged.get(ident)
        if not final and last is not None and basis < last * _REJUDGE_GROWTH:
            return None  # in spec at its last judgement, and not much new seen since
        station.judged[ident] = basis
        figures = as_dict(item.figures()) if views else {}
        reasons = reasons_for(figures, specs, self.plane.units)
        quality = track.score_sum / max(track.views, 1)
        if minimum is not None and quality < minimum:
            reasons.append({"measure": "match_quality", "value": round(quality, 3), "min": minimum, "max": None,
                            "unit": ""})
        if not reasons:
            # In spec: final when it nears the station or its track ends; until then each view kept judges again
            # (its first views may have shown part of it only).
            if final:
                station.decided.add(ident)
            return None
        station.decided.add(ident)
        if self._piece_of_larger(ident, frame.index, samples, figures, velocity):
            return None
        if math.isfinite(frames_to_go):
            decision = self._belt_place(station, track, motion, frame.index + frames_to_go, figures, velocity)
            if any(decision.same_item(other) for other in station.recent):
                return None  # another track of an item rejected already
            station.recent.append(decision)
        now_wall, now_mono = self.wall_clock(), self.mono_clock()
        if math.isfinite(frames_to_go):
            arrival = (self.clock.time_of(frame.index) or frame.capture_ts) + frames_to_go * period
        else:
            arrival = now_wall  # a track that ended before any prediction: missed, due now
        due = arrival - station.config.lead_ms / 1000.0
        event = RejectEvent(self.camera, int(frame.index), int(ident), station.name, reasons, now_wall, due,
                            now_mono + (due - now_wall), station.config.pulse_ms, due < now_wall, arrival,
                            station.config.lead_ms, track.truth_id)
        if track.truth_id is not None and len(self._pending_truth) < _MAX_PENDING_TRUTH:
            pixels = self.plane.to_pixels(station.line).reshape(-1).tolist()
            truth_index = frame.truth.simulator.arrival_index(track.truth_id, tuple(pixels))
            if math.isfinite(truth_index):
                self._pending_truth.append((event, truth_index))
        return event

    def _piece_of_larger(self, ident: int, index: int, samples: dict, figures: dict,
                         velocity: np.ndarray | None) -> bool:
        """Whether track `ident` (its `figures`) is a piece of another track's item: a track seen whole more
        often, and larger, whose disc (its diameter about its centre, both where the belt has carried them by
        frame `index`) holds its centre. The segmentation found part of the item there (its shading, a piece)
        while another track follows the whole."""
        size = figures.get("diameter")
        if size is None:
            return False  # not measured (a foreign object judged by its match quality alone)
        views = samples[ident].shapes.views
        others = [(other, track) for other, track in self._tracks.items()
                  if other != ident and other in samples and samples[other].shapes.views > views]
        if not others:
            return False
        shift = np.zeros(2) if velocity is None else np.asarray(velocity, np.float64)
        centres = [track.centre + shift * (index - track.index) for _, track in [(ident, self._tracks[ident])] + others]
        positions = self.plane.to_plane(np.array(centres))
        distance = np.hypot(*(positions[1:] - positions[0]).T)
        for (other, _), apart in zip(others, distance.tolist()):
            larger = samples[other].figures()
            if larger is not None and larger[COLUMN["diameter"]] > size and apart < larger[COLUMN["diameter"]] / 2:
                return True
        return False

    def _belt_place(self, station: _Station, track: TrackMotion, motion: tuple[np.ndarray, np.ndarray],
                    arrival: float, figures: dict, velocity: np.ndarray | None) -> BeltPlace:
        p0, p1 = station.line
        direction = (p1 - p0) / np.hypot(*(p1 - p0))
        normal = np.array([direction[1], -direction[0]])
        size = figures.get("diameter") or 0.0
        seen = self.plane.to_plane(track.centre[None])[0]
        belt = None
        if velocity is not None:
            belt = self.plane.to_plane(track.centre[None] + np.asarray(velocity)[None])[0] - seen
        return BeltPlace(arrival, float((motion[0] - p0) @ direction), size, abs(float(motion[1] @ normal)),
                         track.index, seen, belt)

    def _resolve_truth(self, frame: Frame) -> None:
        """Rejects whose true arrival frame has come: their prediction error goes to arrival_errors."""
        if not self._pending_truth:
            return
        due = [(event, index) for event, index in self._pending_truth if index <= frame.index]
        self._pending_truth = [(event, index) for event, index in self._pending_truth if index > frame.index]
        for event, index in due:
            truth = self.clock.time_of(index)
            if truth is not None:
                self.arrival_errors.append((event.station, event.arrival_wall - truth))


def _truth_ids(truth, centres: np.ndarray) -> np.ndarray | None:
    """The flow simulator's truth item under each centroid (int64[N]: the nearest one whose disc of its equivalent
    diameter holds it, -1 where none does), or None without such truth. A track's reject then names the item the
    station would act on, whatever the share of it the segmentation found."""
    if not hasattr(truth, "simulator") or len(centres) == 0:
        return None
    if len(truth.ids) == 0:
        return np.full(len(centres), -1, np.int64)
    distance = np.hypot(*(centres[:, None, :] - truth.centres[None, :, :]).transpose(2, 0, 1))
    nearest = np.argmin(distance, axis=1)
    limit = truth.diameters_px[nearest] / 2.0
    return np.where(distance[np.arange(len(centres)), nearest] <= limit, truth.ids[nearest], -1)
