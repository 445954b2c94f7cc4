"""One camera's tally: tracks, line crossings, per-item measurements and specs, frame after frame.

`observe` runs on the inference thread after each segmented frame: it measures every instance, gives it a
track id, counts line crossings (each track once), and finalises an item when its track ends (its figures
are the median over whole views taken evenly along its track, TrackSamples, of those that show all of
the item: streamer.tracking.whole_views). `take_interval`
hands out what the `persense/<camera>/tally` message reports. No sockets or metrics here (streamer.stream.tally_sink).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from streamer.sources.base import Frame
from streamer.stream.tally_config import CountLineConfig, TallyConfig
from streamer.stream.tally_specs import SpecRange, default_specs, in_spec, specs_doc
from streamer.stream.tally_zones import CameraZones, ZoneStep, place
from streamer.stream.rejects import CameraRejects, RejectEvent
from streamer.tracking.belt_plane import BeltPlane
from streamer.tracking.crossing import BACKWARD, FORWARD, LineCounter
from streamer.tracking.measure import COLUMN, FIELDS, add_details, as_dict, measure_shapes, touches_border
from streamer.tracking.tracker import BeltTracker, TrackerParams
from streamer.tracking.whole_views import whole_item_views
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)

_MAX_ITEMS_PER_INTERVAL = 1000  # a tally message lists at most this many items (the counts cover all)
_DETAILS = [COLUMN[name] for name in ("solidity", "red", "green", "blue")]  # measured by add_details
_SHAPES = [COLUMN[name] for name in FIELDS if COLUMN[name] not in _DETAILS]


@dataclass
class PassedItem:
    """One counted item, finalised when its track ended."""

    track_id: int
    line: str
    direction: str
    figures: dict[str, float | None] | None  # None: never seen whole (always at the frame's edge)
    in_spec: bool | None
    truth_diameter: float | None = None
    product: str | None = None  # where the camera counts several products: the one the item was when it crossed

    def to_dict(self) -> dict:
        doc = {"track_id": self.track_id, "line": self.line, "direction": self.direction, "in_spec": self.in_spec,
               "measure": self.figures}
        if self.truth_diameter is not None:
            doc["truth_diameter"] = round(self.truth_diameter, 3)
        if self.product is not None:
            doc["product"] = self.product
        return doc


@dataclass
class TrackSamples:
    """Figure rows of a track's views, at most `capacity` of them, spread evenly over the whole track however long
    it lasts: every view is kept until the store is full, then every other kept view is dropped and from then on
    only every 2nd (then 4th, ...) view is taken. Bounded memory and work for an item that stops on the belt, and
    a median that is the track's, not its first frames'."""

    capacity: int
    rows: list[np.ndarray] = field(default_factory=list)
    stride: int = 1
    views: int = 0
    kept: int = 0  # rows ever added (some since dropped)

    def take(self) -> bool:
        """One more view -> whether to keep it (then `add` its row)."""
        keep = self.views % self.stride == 0
        self.views += 1
        return keep

    def add(self, row: np.ndarray) -> None:
        self.rows.append(row)
        self.kept += 1
        if len(self.rows) > self.capacity:
            self.rows = self.rows[::2]
            self.stride *= 2

    def median(self, columns: list[int], whole_by: int | None = None) -> np.ndarray | None:
        """The median of the kept rows' `columns`, or None before any row; with `whole_by` (a length column),
        of the rows that show the whole item by it (streamer.tracking.whole_views) only."""
        if not self.rows:
            return None
        rows = np.stack(self.rows)
        if whole_by is not None:
            rows = rows[whole_item_views(rows[:, whole_by])]
        return _median(rows[:, columns])


@dataclass
class ItemFigures:
    """One track's whole views (not cut by the frame's edge). The shape figures (area, diameter, axes,
    orientation) come with every view at no extra cost: up to 4 x `samples` of them are kept. Solidity and colour
    cost a measurement of their own: up to `samples` views get one. Both spread over the whole track."""

    samples: int
    shapes: TrackSamples = field(init=False)
    details: TrackSamples = field(init=False)

    def __post_init__(self):
        self.shapes, self.details = TrackSamples(4 * self.samples), TrackSamples(self.samples)

    def figures(self) -> np.ndarray | None:
        """The median figures, the shape figures' over the views about the size that shows the whole item (a view
        of part of it, where the segmentation found only that, is left out), or None without a whole view."""
        shapes = self.shapes.median(_SHAPES, whole_by=COLUMN["diameter"])
        if shapes is None:
            return None
        figures = np.full(len(FIELDS), np.nan)
        figures[_SHAPES] = shapes
        details = self.details.median(_DETAILS)
        if details is not None:
            figures[_DETAILS] = details
        return figures


@dataclass
class _Line:
    name: str
    config: CountLineConfig
    counter: LineCounter | None = None  # made at the first frame, when the frame size is known


@dataclass
class _Interval:
    passed: int = 0
    items: list[PassedItem] = field(default_factory=list)
    dropped_items: int = 0


def resolve_line(config: CountLineConfig, width: int, height: int) -> tuple[float, float, float, float]:
    """The line in pixels; ValueError when it lies outside a width x height frame."""
    x0, y0, x1, y1 = config.points
    if config.normalized:
        return (x0 * width, y0 * height, x1 * width, y1 * height)
    if max(x0, x1) > width or max(y0, y1) > height:
        raise ValueError(f"line {config.points} lies outside the {width}x{height} frame")
    return (x0, y0, x1, y1)


def _median(samples: np.ndarray) -> np.ndarray:
    """Per column of a few rows without NaN: a sort, as numpy's median costs tens of microseconds of overhead."""
    ordered = np.sort(samples, axis=0)
    n = len(ordered)
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2.0


class CameraTally:
    """Args: config: stream.tally; camera: this camera's id (picks its lines); support_mask: bool[h, w] of the
    support object (the default spec and histogram range)."""

    def __init__(self, config: TallyConfig, camera: str, support_mask: np.ndarray | None = None):
        self.config, self.camera = config, camera
        calibration = config.calibration_of(camera)
        self.plane = BeltPlane.from_config(calibration)
        # Pixels per mm for what is not in the frame (the support image's default spec): a homography's scale at
        # the frame's centre.
        self.scale = self.plane.px_per_mm
        if calibration.homography is not None:
            width, height = calibration.image_size
            self.scale = float(self.plane.local_px_per_mm(np.array([[width / 2, height / 2]]))[0])
        self.units = self.plane.units
        self._calibrated_size = calibration.image_size
        self.rejects = CameraRejects(config.rejects, camera, self.plane)
        self.reject_events: list[RejectEvent] = []  # what the last observed frame decided
        mine = [c for c in config.lines if c.camera in (None, camera)]
        self.lines = [_Line(c.name or f"line{i}", c) for i, c in enumerate(mine)]
        self.zones = CameraZones(config.zones, camera)
        self.zone_steps: list[ZoneStep] = []  # what the last observed frame did in each zone
        tracking = config.tracking
        self.tracker = BeltTracker(TrackerParams(velocity=tracking.velocity, gate=tracking.gate,
                                                 max_missed=tracking.max_missed))
        self.passed_total = 0
        self.passed_by_product: dict[str, int] = {}  # where the camera counts several products (docs/products.md)
        self.product_specs: dict[str, dict[str, SpecRange]] = {}  # the specs of its products beyond the default one
        self.out_of_spec_total = 0
        self.measured_total = 0
        self.truth_passed_total: int | None = None
        self.direction_totals = {FORWARD: 0, BACKWARD: 0}
        self._samples: dict[int, ItemFigures] = {}
        self._pending: dict[int, tuple[str, str, float | None, str | None]] = {}
        self._interval = _Interval()
        self._histogram_total: np.ndarray | None = None
        self.set_support(support_mask)

    def set_support(self, support_mask: np.ndarray | None) -> None:
        """A new support: the default spec and histogram range follow it (configured ones stay)."""
        self.specs = dict(self.config.specs) or default_specs(support_mask, self.scale, self.config.spec_tolerance)
        low_high = self.config.histogram_range
        if low_high is None:
            reference = default_specs(support_mask, self.scale, 0.0).get("diameter")
            low_high = (0.5 * reference.min, 1.5 * reference.min) if reference else (0.0, 200.0)
        self.edges = np.linspace(low_high[0], low_high[1], self.config.histogram_bins + 1)
        self._histogram_total = np.zeros(len(self.edges) + 1, np.int64)  # [below, bins..., above]
        self._histogram_interval = np.zeros_like(self._histogram_total)

    def set_product_support(self, product: str, support_mask: np.ndarray | None) -> None:
        """The support of one of the camera's products beyond its default one (docs/products.md): that product's
        items are judged against its own default spec (configured specs, where there are, are the camera's)."""
        self.product_specs[product] = dict(self.config.specs) or default_specs(support_mask, self.scale,
                                                                               self.config.spec_tolerance)

    def forget_product(self, product: str) -> None:
        self.product_specs.pop(product, None)

    # -- per frame ------------------------------------------------------------------------------------
    def observe(self, frame: Frame, result: SegmentationResult) -> list[PassedItem]:
        """Track, count and measure one result (sets each instance's track_id and measurements, and
        result.tally) -> the items finalised now."""
        if self._calibrated_size is not None and self._calibrated_size != (result.width, result.height):
            # Said once: a homography holds for the frame size it was fitted on.
            log.error("camera %s: its calibration was made for %dx%d frames, these are %dx%d: its millimetres are "
                      "wrong until it is calibrated again (persense calibrate)", self.camera, *self._calibrated_size,
                      result.width, result.height)
            self._calibrated_size = None
        instances = result.instances
        boxes = np.array([i.bbox for i in instances], np.int64).reshape(-1, 4)
        masks = [i.mask for i in instances]
        measured = measure_shapes(boxes, masks)
        centres = measured.centres
        ids, ended = self.tracker.update(frame.index, centres, np.nan_to_num(measured.table[:, COLUMN["diameter"]]))
        # Whole views only (not cut by the frame's edge, not empty, a mask the decoder is sure of); those a track
        # keeps for solidity and colour get them.
        scores = np.array([i.score for i in instances], np.float64)
        whole = np.flatnonzero(~touches_border(boxes, result.width, result.height)
                               & (measured.table[:, COLUMN["area"]] > 0) & (scores >= self.config.min_view_score))
        tracks = [self._item(ident) for ident in ids[whole].tolist()]
        detailed = [track.details.take() for track in tracks]
        add_details(measured, frame.image, boxes, masks, whole[np.array(detailed, bool)].tolist())
        figures = self.plane.figures(measured.table, centres)
        for inst, ident, row in zip(instances, ids.tolist(), figures):
            inst.track_id, inst.measurements = ident, row
        for k, track, detail in zip(whole.tolist(), tracks, detailed):
            if track.shapes.take():
                track.shapes.add(figures[k])
            if detail:
                track.details.add(figures[k])
        truth = frame.truth
        place(self.lines, lambda config: LineCounter(resolve_line(config, result.width, result.height)), self.camera,
              "counting line")
        product_of = {ident: inst.product for inst, ident in zip(instances, ids.tolist()) if inst.product is not None}
        for index, line in enumerate(self.lines):
            for ident, direction in line.counter.update(ids, centres):
                self.direction_totals[direction] += 1
                if line.config.count in (direction, "both"):
                    self.passed_total += 1
                    self._interval.passed += 1
                    product = product_of.get(ident)
                    if product is not None:
                        self.passed_by_product[product] = self.passed_by_product.get(product, 0) + 1
                    self._pending[ident] = (line.name, direction, self._truth_diameter(truth, centres[ids == ident]),
                                            product)
            line.counter.forget(ended)
            if index == 0 and truth is not None and hasattr(truth, "passed"):
                self.truth_passed_total = int(truth.passed(line.counter.line))
        self.zone_steps = self.zones.update(result.width, result.height, ids, centres, frame.capture_ts, ended)
        is_whole = np.zeros(len(ids), bool)
        is_whole[whole] = True
        self.reject_events = self.rejects.update(frame, result.width, result.height, ids, centres, is_whole,
                                                 scores, self._samples,
                                                 self.specs, ended, self.tracker.velocity)
        finished = [self._finalise(ident) for ident in ended if ident in self._pending]
        for ident in ended:
            self._samples.pop(ident, None)
        result.tally = self.header()
        return finished

    def _item(self, ident: int) -> ItemFigures:
        item = self._samples.get(ident)
        if item is None:
            item = self._samples[ident] = ItemFigures(self.config.samples_per_item)
        return item

    def _truth_diameter(self, truth, centre: np.ndarray) -> float | None:
        """The diameter of the truth item nearest the crossing track (the flow simulator only), in our units."""
        diameters = getattr(truth, "diameters_px", None)
        if diameters is None or len(diameters) == 0 or len(centre) == 0:
            return None
        nearest = int(np.argmin(np.hypot(*(truth.centres - centre[0]).T)))
        value = float(diameters[nearest])
        return value / self.scale if self.scale is not None else value

    def _finalise(self, ident: int) -> PassedItem:
        line, direction, truth_diameter, product = self._pending.pop(ident)
        samples = self._samples.get(ident)
        median = samples.figures() if samples is not None else None
        figures = as_dict(median) if median is not None else None
        ok = in_spec(figures, self.product_specs.get(product, self.specs)) if figures else None
        item = PassedItem(ident, line, direction, figures, ok, truth_diameter, product)
        if figures is not None and figures.get("diameter") is not None:
            self.measured_total += 1
            slot = np.searchsorted(self.edges, figures["diameter"], side="right")
            self._histogram_total[slot] += 1
            self._histogram_interval[slot] += 1
        if ok is False:
            self.out_of_spec_total += 1
        if len(self._interval.items) < _MAX_ITEMS_PER_INTERVAL:
            self._interval.items.append(item)
        else:
            self._interval.dropped_items += 1
        return item

    def header(self) -> dict:
        """The fields each result header gains."""
        doc = {"tracks": self.tracker.active, "passed_total": self.passed_total}
        if self.passed_by_product:
            doc["passed_by_product"] = dict(self.passed_by_product)
        if self.truth_passed_total is not None:
            doc["truth_passed_total"] = self.truth_passed_total
        if self.zones.zones:
            doc["zones"] = self.zones.header()
        return doc

    # -- per interval ---------------------------------------------------------------------------------
    def take_interval(self) -> dict:
        """The tally message's fields for the interval since the last call; the interval restarts."""
        interval, self._interval = self._interval, _Interval()
        histogram, self._histogram_interval = self._histogram_interval, np.zeros_like(self._histogram_interval)
        doc = {
            "passed": interval.passed,
            "passed_total": self.passed_total,
            **({"passed_by_product": dict(self.passed_by_product)} if self.passed_by_product else {}),
            "by_direction": dict(self.direction_totals),
            "measured_total": self.measured_total,
            "out_of_spec_total": self.out_of_spec_total,
            "tracks": self.tracker.active,
            "units": self.units,
            "specs": specs_doc(self.specs),
            **({"specs_by_product": {name: specs_doc(specs) for name, specs in self.product_specs.items()}}
               if self.product_specs else {}),
            "size_histogram": {"measure": "diameter", "edges": [round(float(e), 3) for e in self.edges],
                               "below": int(histogram[0]), "counts": histogram[1:-1].tolist(),
                               "above": int(histogram[-1])},
            "size_histogram_total": {"below": int(self._histogram_total[0]),
                                     "counts": self._histogram_total[1:-1].tolist(),
                                     "above": int(self._histogram_total[-1])},
            "items": [item.to_dict() for item in interval.items],
            "items_left_out": interval.dropped_items,
        }
        if self.truth_passed_total is not None:
            doc["truth_passed_total"] = self.truth_passed_total
        if self.zones.zones:
            doc["zones"] = self.zones.take_interval()
        return doc
