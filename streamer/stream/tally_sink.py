"""Where tracking meets the stream: a ResultSink that tallies each result before handing it on.

It wraps the processor's sink (publisher + live view): on the inference thread it runs each camera's
CameraTally (track ids, measurements, crossings), updates the metrics, and every `interval_s` queues a
`persense/<camera>/tally` message with the publisher. A failure in the tally is logged and counted, never
fatal: the result still goes out, without its tally fields.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

import numpy as np

from streamer.sources.base import Frame
from streamer.stream.messages import reject_message, tally_message
from streamer.stream.metrics import StreamMetrics
from streamer.stream.tally import CameraTally
from streamer.stream.tally_config import TallyConfig
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)

RECENT_OUT_OF_SPEC = 5


class TallySink:
    """Args: sink: the ResultSink results go on to; send: queues a built message ([topic, header, ...]) with
    the publisher; clock: monotonic seconds (tests pass their own); on_reject: told the camera of each reject
    decided, before the frame goes on to `sink` (the archive keeps that frame)."""

    def __init__(self, sink, config: TallyConfig, cameras: list[str], metrics: StreamMetrics,
                 send: Callable[[str, list[bytes]], None], support_mask: np.ndarray | None = None,
                 clock: Callable[[], float] = time.monotonic, on_reject: Callable[[str], None] | None = None):
        self.sink, self.config, self.metrics, self.send, self.clock = sink, config, metrics, send, clock
        self.on_reject = on_reject
        self.tallies = {camera: CameraTally(config, camera, support_mask) for camera in cameras}
        for camera, tally in self.tallies.items():  # every zone's series from the start, zeros rather than gaps
            for zone in tally.zones.zones:
                metrics.zone_entries.labels(camera, zone.name)
                metrics.zone_items.labels(camera, zone.name)
                metrics.zone_seconds.labels(camera, zone.name)
            for station in tally.rejects.stations:
                metrics.rejects.labels(camera, station.name)
                metrics.rejects_missed.labels(camera, station.name)
        self._next_due = {camera: clock() + config.interval_s for camera in cameras}
        self._seq = dict.fromkeys(cameras, 0)
        self._failures = 0
        self._missed = 0
        # The last out-of-spec items per camera, for the console (appended here, read by the HTTP thread).
        self.out_of_spec: dict[str, deque] = {camera: deque(maxlen=RECENT_OUT_OF_SPEC) for camera in cameras}

    def set_support(self, support_mask: np.ndarray, camera: str | None = None, product: str | None = None) -> None:
        """The support of `camera` (None: of every camera), of its `product` beyond the default one (None: of the
        default one, whose support the camera's specs and histogram follow). Call on the inference thread (where
        observe runs)."""
        for name, tally in self.tallies.items():
            if camera is None or name == camera:
                if product is None:
                    tally.set_support(support_mask)
                else:
                    tally.set_product_support(product, support_mask)

    def forget_product(self, camera: str, product: str) -> None:
        """A product the camera no longer counts: its spec goes (its items passed stay counted)."""
        if camera in self.tallies:
            self.tallies[camera].forget_product(product)

    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool:
        tally = self.tallies.get(frame.camera)
        if tally is not None:
            try:
                self._observe(tally, frame, result)
            except Exception:  # the result still goes out; one bad frame must not end the stream
                self._failures += 1
                if self._failures == 1 or self._failures % 100 == 0:
                    log.exception("camera %s: tallying frame %d failed (%d so far)", frame.camera, frame.index,
                                  self._failures)
        return self.sink.submit(frame, result, support_id, wait)

    def _observe(self, tally: CameraTally, frame: Frame, result: SegmentationResult) -> None:
        camera = frame.camera
        start = time.perf_counter()
        finished = tally.observe(frame, result)
        self.metrics.stage.labels(camera, "tracking").observe(time.perf_counter() - start)
        self.metrics.active_tracks.labels(camera).set(tally.tracker.active)
        for item in finished:
            spec = {True: "in", False: "out", None: "unknown"}[item.in_spec]
            self.metrics.items.labels(camera, item.direction, spec).inc()
            if item.in_spec is False:
                self.out_of_spec[camera].append({"ts": round(time.time(), 3), "units": tally.units, **item.to_dict()})
            if item.figures is not None and item.figures.get("diameter") is not None:
                self.metrics.item_diameter.labels(camera, tally.units).observe(item.figures["diameter"])
        for step in tally.zone_steps:
            self.metrics.zone_entries.labels(camera, step.name).inc(len(step.entered))
            self.metrics.zone_items.labels(camera, step.name).set(step.occupancy)
            for spent in step.left.values():
                self.metrics.zone_seconds.labels(camera, step.name).observe(spent)
        for event in tally.reject_events:
            # Sent at once, not with the interval's tally: the reject station acts on it.
            self.send(camera, reject_message(camera, event.to_dict()))
            if self.on_reject is not None:
                self.on_reject(camera)
            self.metrics.rejects.labels(camera, event.station).inc()
            if event.missed:
                self.metrics.rejects_missed.labels(camera, event.station).inc()
                self._missed += 1
                if self._missed == 1 or self._missed % 100 == 0:
                    log.warning("camera %s: reject of track %d at %s decided %.3f s after its due time (%d missed "
                                "so far)", camera, event.track_id, event.station, event.decided_wall - event.due_wall,
                                self._missed)
        for station, error in tally.rejects.arrival_errors:
            self.metrics.reject_arrival_error.labels(camera, station).observe(abs(error))
        tally.rejects.arrival_errors.clear()
        now = self.clock()
        if now >= self._next_due[camera]:
            self._next_due[camera] = now + self.config.interval_s
            self.send(camera, tally_message(camera, self._seq[camera], tally.take_interval()))
            self._seq[camera] += 1
