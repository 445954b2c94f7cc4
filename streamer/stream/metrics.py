"""Prometheus metrics of the stream processor, in a registry of its own (no process-global state).

Labels stay bounded: `camera` comes from the configured sources, `stage` and `outcome` from fixed lists.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from streamer.persense.pipeline import STAGES

OUTCOMES = ("processed", "failed", "dropped_stale", "dropped_paused", "dropped_shutdown", "corrupt")
CONTROL_OUTCOMES = ("ok", "error")
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ITEM_SPECS = ("in", "out", "unknown")
DIRECTIONS = ("forward", "backward")
# Item diameters, in the tally's units (mm when calibrated, else px): 1 to 1000, about 12% apart.
_SIZE_BUCKETS = tuple(round(10 ** (k / 20), 2) for k in range(61))
# Seconds a track spent in a zone: 0.1 s to 10 minutes.
_DWELL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Predicted minus true arrival at a reject station, absolute seconds: 1 ms to 10 s.
_ARRIVAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
OUTPUT_DROPS = ("queue_full", "late", "unreadable")
_E2E_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class SourceSnapshot:
    """One camera's supervisor as seen at scrape time."""

    camera: str
    up: bool
    reconnects: int
    last_frame_age_s: float | None  # None before the first frame


class _SourceCollector:
    """Reads the supervisors when scraped, so the figures are never older than the scrape."""

    def __init__(self, snapshots: Callable[[], Iterable[SourceSnapshot]]):
        self._snapshots = snapshots

    def collect(self):
        up = GaugeMetricFamily("persense_source_up", "1 while the camera is streaming, else 0", labels=["camera"])
        reconnects = CounterMetricFamily(
            "persense_source_reconnects", "reconnect attempts of the camera's supervisor", labels=["camera"]
        )
        age = GaugeMetricFamily(
            "persense_last_frame_age_seconds", "seconds since the camera's last frame (NaN before the first)",
            labels=["camera"],
        )
        for snap in self._snapshots():
            up.add_metric([snap.camera], 1.0 if snap.up else 0.0)
            reconnects.add_metric([snap.camera], float(snap.reconnects))
            age.add_metric([snap.camera], math.nan if snap.last_frame_age_s is None else snap.last_frame_age_s)
        yield from (up, reconnects, age)

    def describe(self):
        # Declaring no descriptions keeps registration from calling collect() before the sources exist.
        return []


class _WithoutCreated:
    """A view of a registry without prometheus_client's `*_created` samples, so the exposed names are exactly
    the documented ones (turning them off in the library would be process-global state). It is what
    generate_latest and prometheus_client's ASGI app read."""

    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self):
        for family in self._registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family

    def restricted_registry(self, names):
        return _WithoutCreated(self._registry.restricted_registry(names))


class StreamMetrics:
    """All metrics of one processor. Thread-safe (prometheus_client's metrics lock internally)."""

    def __init__(self, cameras: list[str]):
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.frames = Counter(
            "persense_frames_total", "frames by outcome (processed, failed, dropped_<reason>)",
            ["camera", "outcome"], registry=r,
        )
        self.stage = Histogram(
            "persense_stage_seconds", "seconds per frame spent in each stage", ["camera", "stage"],
            buckets=_STAGE_BUCKETS, registry=r,
        )
        self.end_to_end = Histogram(
            "persense_end_to_end_seconds", "capture to publish, seconds", ["camera"], buckets=_E2E_BUCKETS, registry=r
        )
        self.objects = Gauge("persense_objects", "instances in the camera's last result", ["camera"], registry=r)
        self.match_quality = Gauge(
            "persense_match_quality",
            "how alike the camera's last objects are to the support (1: as alike as the support to itself, "
            "0: unrelated); below the presence threshold the frame counts 0",
            ["camera"], registry=r,
        )
        self.publish_dropped = Counter(
            "persense_publish_dropped_total",
            "results sent to no subscriber: the publish queue was full or encoding failed",
            ["camera"], registry=r,
        )
        self.subscriber_overflows = Counter(
            "persense_publish_subscriber_overflows_total",
            "times a subscriber reached its send high-water mark: it misses results (the others do not) until it "
            "catches up, which its own seq gaps show; ZeroMQ does not say which subscriber",
            ["camera"], registry=r,
        )
        self.control_requests = Counter(
            "persense_control_requests_total", "control requests answered, by outcome (ok, error)", ["outcome"],
            registry=r,
        )
        self.control_restarts = Counter(
            "persense_control_restarts_total", "times the control thread had ended and was restarted", registry=r
        )
        self.auth_denied = Counter(
            "persense_auth_denied_total",
            "connections refused by CURVE authentication (anonymous or unknown client key), by socket",
            ["socket"], registry=r,
        )
        self.items = Counter(
            "persense_items_total",
            "items counted passing a counting line, once their track ended, by direction and spec (in, out, unknown)",
            ["camera", "direction", "spec"], registry=r,
        )
        self.item_diameter = Histogram(
            "persense_item_diameter", "equivalent diameter of each passed item (median over its track)",
            ["camera", "unit"], buckets=_SIZE_BUCKETS, registry=r,
        )
        self.active_tracks = Gauge("persense_active_tracks", "tracks matched in the camera's last frame", ["camera"],
                                   registry=r)
        # `zone` values are the configured zone names (at most 16 per camera): a bounded label.
        self.zone_entries = Counter("persense_zone_entries_total", "tracks that entered the zone (each once)",
                                    ["camera", "zone"], registry=r)
        self.zone_items = Gauge("persense_zone_items", "tracks in the zone in the camera's last frame",
                                ["camera", "zone"], registry=r)
        self.zone_seconds = Histogram("persense_zone_seconds", "time each track spent in the zone, once it ended",
                                      ["camera", "zone"], buckets=_DWELL_BUCKETS, registry=r)
        # `station` values are the configured reject stations' names (at most 16 per camera): a bounded label.
        self.rejects = Counter("persense_rejects_total", "items a reject station was told to reject, missed ones too",
                               ["camera", "station"], registry=r)
        self.rejects_missed = Counter(
            "persense_rejects_missed_total", "rejects decided after their due time (published with missed: true)",
            ["camera", "station"], registry=r)
        self.reject_arrival_error = Histogram(
            "persense_reject_arrival_error_seconds",
            "|predicted - true| arrival of a rejected item at its station, where the source knows the truth "
            "(the simulator)", ["camera", "station"], buckets=_ARRIVAL_BUCKETS, registry=r)
        # The plant's outputs (streamer.outputs): `output` is mqtt, opcua or modbus; each one's series are made when it
        # is built (`output_series`), so a run without outputs exposes none.
        self.output_up = Gauge("persense_output_up", "1 while the output serves (a server listening, the MQTT client "
                               "connected to its broker), 0 while degraded", ["output"], registry=r)
        self.output_messages = Counter(
            "persense_output_messages_total",
            "messages an output passed on: MQTT messages published (QoS > 0: acknowledged by the broker), OPC UA and "
            "Modbus messages taken into their figures, coil pulses started", ["output"], registry=r)
        self.output_dropped = Counter(
            "persense_output_dropped_total",
            "messages an output lost, by reason: queue_full (its bounded queue was full: a slow or absent peer), late "
            "(a reject pulse that could not start before its due time plus its length), unreadable",
            ["output", "reason"], registry=r)
        self.output_reconnects = Counter("persense_output_reconnects_total",
                                         "times a client output connected again after losing its peer", ["output"],
                                         registry=r)
        self.output_down_seconds = Counter(
            "persense_output_down_seconds_total",
            "seconds an output was without its peer since start (the MQTT client without its broker), counted when "
            "the peer comes back or the output stops", ["output"], registry=r)
        self._products: set[tuple[str, str]] = set()  # (camera, product) with series (product_series)
        self._products_lock = threading.Lock()
        self.product_objects: Gauge | None = None  # made by the first product_series
        self.suppressed_by_negative: Counter | None = None
        for outcome in CONTROL_OUTCOMES:
            self.control_requests.labels(outcome)
        for socket in ("control", "publish"):
            self.auth_denied.labels(socket)
        # Every series exists from the start, so dashboards and rate() see zeros rather than gaps.
        for camera in cameras:
            self.subscriber_overflows.labels(camera)
            for outcome in OUTCOMES:
                self.frames.labels(camera, outcome)
            self.publish_dropped.labels(camera)
            self.end_to_end.labels(camera)
            self.objects.labels(camera)
            self.match_quality.labels(camera)
            for direction in DIRECTIONS:
                for spec in ITEM_SPECS:
                    self.items.labels(camera, direction, spec)

    def output_series(self, output: str) -> None:
        """Every series of one output from the start: zeros rather than gaps."""
        self.output_up.labels(output)
        self.output_messages.labels(output)
        self.output_reconnects.labels(output)
        self.output_down_seconds.labels(output)
        for reason in OUTPUT_DROPS:
            self.output_dropped.labels(output, reason)

    def product_series(self, camera: str, product: str) -> None:
        """A product's series from the start (zeros rather than gaps). The families themselves are made with the
        first: a processor whose cameras count one product each, without negative examples, exposes exactly what
        it did before products (docs/products.md)."""
        with self._products_lock:
            if self.product_objects is None:
                # `product` values are a camera's products' names (at most stream.max_products at once; a removed
                # product's series go with it): a bounded label.
                self.product_objects = Gauge(
                    "persense_product_objects", "instances of each product in the camera's last result, where the "
                    "camera counts several products", ["camera", "product"], registry=self.registry,
                )
                self.suppressed_by_negative = Counter(
                    "persense_suppressed_by_negative_total", "objects found but not counted for the product because "
                    "they look more like one of its negative examples", ["camera", "product"], registry=self.registry,
                )
            self._products.add((camera, product))
        self.product_objects.labels(camera, product)
        self.suppressed_by_negative.labels(camera, product)

    def forget_product(self, camera: str, product: str) -> None:
        """A removed product's series go with it (the label stays bounded however often products change); results
        of it still on their way to the publisher do not bring them back."""
        self._products.discard((camera, product))
        if self.product_objects is None:
            return
        for metric in (self.product_objects, self.suppressed_by_negative):
            try:
                metric.remove(camera, product)
            except KeyError:
                pass

    def observe_products(self, camera: str, result) -> None:
        """A published result's per-product figures (streamer.types.SegmentationResult.products), where it has them,
        and the objects its negative examples removed."""
        for name, figures in result.products.items():
            if (camera, name) not in self._products:
                continue
            self.product_objects.labels(camera, name).set(figures["count"])
            if figures["suppressed_by_negative"]:
                self.suppressed_by_negative.labels(camera, name).inc(figures["suppressed_by_negative"])
        name = result.product or "product"
        if not result.products and result.suppressed_by_negative and (camera, name) in self._products:
            self.suppressed_by_negative.labels(camera, name).inc(result.suppressed_by_negative)

    def watch_sources(self, snapshots: Callable[[], Iterable[SourceSnapshot]]) -> None:
        self.registry.register(_SourceCollector(snapshots))

    def frame(self, camera: str, outcome: str) -> None:
        self.frames.labels(camera, outcome).inc()

    def observe_stages(self, camera: str, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            if stage in STAGES:  # an engine's private stage name must not grow the label set
                self.stage.labels(camera, stage).observe(ms / 1000.0)

    @property
    def exposed(self) -> _WithoutCreated:
        """The registry as /metrics serves it (without `*_created` series)."""
        return _WithoutCreated(self.registry)

    def exposition(self) -> bytes:
        """The Prometheus text of `exposed`."""
        return generate_latest(self.exposed)
