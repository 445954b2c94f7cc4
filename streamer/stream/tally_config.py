"""`stream.tally:` tracking, counting lines, measurements and specs (streamer.stream.tally runs them)."""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamer.tracking.measure import FIELDS
from streamer.tracking.zones import polygon_area

_MEASURES = tuple(f for f in FIELDS if f not in ("red", "green", "blue")) + ("red", "green", "blue")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountLineConfig(_Section):
    """A counting line; forward is left to right for a line drawn top to bottom (see streamer.tracking.crossing)."""

    points: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1")
    normalized: bool = Field(True, description="points are fractions of the frame's width and height (else pixels)")
    camera: Optional[str] = Field(None, description="the camera it belongs to; null: every camera")
    name: Optional[str] = Field(None, max_length=64, description="its name in messages (default line0, line1...)")
    count: Literal["forward", "backward", "both"] = Field(
        "both", description="the directions that add to passed_total (both directions are reported)")

    @model_validator(mode="after")
    def _valid(self):
        x0, y0, x1, y1 = self.points
        if not all(math.isfinite(v) for v in self.points):
            raise ValueError("line points must be finite numbers")
        if x0 == x1 and y0 == y1:
            raise ValueError("a counting line needs two different points (zero length)")
        if self.normalized and not all(0.0 <= v <= 1.0 for v in self.points):
            raise ValueError(f"a normalised line lies inside the frame: every value in [0, 1], got {self.points}")
        if not self.normalized and min(self.points) < 0:
            raise ValueError(f"a line in pixels lies inside the frame: no negative value, got {self.points}")
        return self


# A zone's area must exceed this share of its extent squared (three points on one line: ~1e-17 by rounding).
_FLAT = 1e-9


class ZoneConfig(_Section):
    """A zone: a polygon; items in it now, time in it per track, entries (see streamer.tracking.zones)."""

    points: list[tuple[float, float]] = Field(min_length=3, max_length=64, description="[[x, y], ...] vertices")
    normalized: bool = Field(True, description="points are fractions of the frame's width and height (else pixels)")
    camera: Optional[str] = Field(None, description="the camera it belongs to; null: every camera")
    name: Optional[str] = Field(None, max_length=64, description="its name in messages and metrics (default zone0...)")

    @model_validator(mode="after")
    def _valid(self):
        values = [v for point in self.points for v in point]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("zone points must be finite numbers")
        if self.normalized and not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError("a normalised zone lies inside the frame: every value in [0, 1]")
        if not self.normalized and min(values) < 0:
            raise ValueError("a zone in pixels lies inside the frame: no negative value")
        span = max(max(values[0::2]) - min(values[0::2]), max(values[1::2]) - min(values[1::2]))
        # Points on one line give an area of 0 up to rounding (1e-17 of a unit frame): an area must be more.
        if not polygon_area(self.points) > _FLAT * span * span:
            raise ValueError("a zone needs a polygon with an area (three or more points, not all on one line)")
        return self


class SpecRange(_Section):
    min: Optional[float] = None
    max: Optional[float] = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"a spec's minimum ({self.min}) exceeds its maximum ({self.max})")
        return self


Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


class CalibrationConfig(_Section):
    """Millimetres: a scale, a reference object's size in pixels and in millimetres, or a belt-plane homography
    (`persense calibrate` writes one, streamer.tracking.belt_plane); none of them: pixels."""

    px_per_mm: Optional[float] = Field(None, gt=0, le=1e6)
    reference_px: Optional[float] = Field(None, gt=0, le=1e6)
    reference_mm: Optional[float] = Field(None, gt=0, le=1e6)
    homography: Optional[Matrix3] = Field(
        None, description="undistorted frame pixels -> belt-plane millimetres (3x3, from a calibration board)")
    camera_matrix: Optional[Matrix3] = Field(None, description="the lens model's camera matrix (OpenCV)")
    distortion: Optional[list[float]] = Field(
        None, min_length=4, max_length=8, description="OpenCV distortion coefficients k1, k2, p1, p2[, k3...]")
    image_size: Optional[tuple[int, int]] = Field(None, description="width, height of the frames it was made for")
    rms_mm: Optional[float] = Field(None, ge=0, description="the board's corners' residual after the fit (mm)")

    @model_validator(mode="after")
    def _one_way(self):
        if (self.reference_px is None) != (self.reference_mm is None):
            raise ValueError("a reference object needs both reference_px and reference_mm")
        if self.px_per_mm is not None and self.reference_px is not None:
            raise ValueError("give px_per_mm or a reference object, not both")
        if self.homography is not None and (self.px_per_mm is not None or self.reference_px is not None):
            raise ValueError("give a homography or a scale (px_per_mm, reference object), not both")
        if (self.distortion is None) != (self.camera_matrix is None):
            raise ValueError("lens distortion needs both camera_matrix and distortion")
        if self.homography is not None and self.image_size is None:
            raise ValueError("a homography needs the image_size (width, height) it was made for")
        if self.distortion is not None and self.homography is None:
            raise ValueError("lens distortion comes with a homography (persense calibrate writes both)")
        values = [v for m in (self.homography, self.camera_matrix) if m for row in m for v in row]
        if not all(math.isfinite(v) for v in values + list(self.distortion or ())):
            raise ValueError("calibration values must be finite numbers")
        if self.homography is not None and abs(float(np.linalg.det(np.array(self.homography)))) < 1e-15:
            raise ValueError("the homography is singular")
        return self

    @property
    def in_mm(self) -> bool:
        return self.homography is not None or self.scale is not None

    @property
    def scale(self) -> Optional[float]:
        """Pixels per millimetre, or None (measure in pixels)."""
        if self.reference_px is not None:
            return self.reference_px / self.reference_mm
        return self.px_per_mm


class RejectStationConfig(_Section):
    """A reject station (an air jet, a pusher): which items it rejects, where it is, and its pulse
    (streamer.stream.rejects). Exactly one of `line` (in the frame) and `downstream_mm` (beyond it)."""

    name: Optional[str] = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                                description="its name in messages and metrics (default reject0, reject1...)")
    camera: Optional[str] = Field(None, description="the camera it belongs to; null: every camera")
    line: Optional[tuple[float, float, float, float]] = Field(
        None, description="x0, y0, x1, y1: a line across the belt in the frame's coordinates")
    normalized: bool = Field(True, description="line points are fractions of the frame's width and height")
    downstream_mm: Optional[float] = Field(
        None, ge=0, le=100_000, description="millimetres beyond the frame's exit edge (needs a calibration)")
    exit_edge: Literal["right", "left", "top", "bottom"] = Field(
        "right", description="the frame edge the belt carries items out through (downstream_mm counts from it)")
    min_match_quality: Optional[float] = Field(
        None, ge=0, le=1, description="also reject items whose match quality (the mean score of their masks) is "
        "below this: a foreign object; null: out of spec only")
    lead_ms: int = Field(0, ge=0, le=60_000, description="the pulse starts this long before the item arrives")
    pulse_ms: int = Field(50, ge=1, le=60_000, description="how long the actuator is held")
    decide_after: int = Field(
        12, ge=1, le=1000, description="whole views of an item its decision waits for (sooner if it nears the "
        "station or its track ends)")

    @model_validator(mode="after")
    def _one_place(self):
        if (self.line is None) == (self.downstream_mm is None):
            raise ValueError("a reject station needs exactly one of line and downstream_mm")
        if self.line is not None:
            CountLineConfig(points=self.line, normalized=self.normalized)  # the same checks as a counting line
        return self


class TrackingConfig(_Section):
    velocity: Optional[tuple[float, float]] = Field(
        None, description="belt velocity (vx, vy) in pixels per source frame; null: estimated from the tracks")
    gate: float = Field(0.5, gt=0, le=5, description="a detection matches a track within this fraction of its size")
    max_missed: int = Field(8, ge=0, le=1000, description="processed frames a track coasts unseen (occlusion)")


class TallyConfig(_Section):
    enabled: Optional[bool] = Field(None, description="track and measure items; null: on where a line or zone is set")
    lines: list[CountLineConfig] = Field(default_factory=list, max_length=16)
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=16)
    interval_s: float = Field(5.0, ge=0.1, le=3600, description="seconds between persense/<camera>/tally messages")
    tracking: TrackingConfig = TrackingConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    camera_calibration: dict[str, CalibrationConfig] = Field(
        default_factory=dict, description="per camera id, its own calibration (persense calibrate writes it); "
        "a camera without one uses `calibration`")
    rejects: list[RejectStationConfig] = Field(default_factory=list, max_length=16)
    specs: dict[str, SpecRange] = Field(
        default_factory=dict, description="ranges per measurement (mm where calibrated); none: around the support")
    spec_tolerance: float = Field(
        0.2, gt=0, le=10, description="default spec: the support object's diameter +- this fraction")
    min_view_score: float = Field(
        0.5, ge=0, le=1, description="masks the decoder scores below this are not measured (not whole views): "
        "with the embedded engines every mask under 0.5 of the flow simulator's items was a part of its item")
    samples_per_item: int = Field(
        4, ge=1, le=1000, description="whole views of an item measured for solidity and colour (4 times as many "
        "for its shape), spread evenly over its track; its figures are their median")
    histogram_bins: int = Field(12, ge=1, le=200, description="bins of the tally's diameter histogram")
    histogram_range: Optional[tuple[float, float]] = Field(
        None, description="diameter range of the histogram; null: 0.5 to 1.5 times the support's diameter")

    @field_validator("specs")
    @classmethod
    def _known_measures(cls, specs):
        unknown = sorted(set(specs) - set(_MEASURES))
        if unknown:
            raise ValueError(f"unknown measurement(s) {unknown} in specs (known: {', '.join(_MEASURES)})")
        return specs

    @field_validator("lines", "zones", "rejects")
    @classmethod
    def _unique_names(cls, items):
        # Per camera: a name is a key in messages and a metric label. No camera (null) means every camera.
        named = [item for item in items if item.name is not None]
        for i, a in enumerate(named):
            for b in named[i + 1:]:
                if a.name == b.name and (a.camera == b.camera or a.camera is None or b.camera is None):
                    raise ValueError(f"the name {a.name!r} is given twice for one camera")
        return items

    @field_validator("histogram_range")
    @classmethod
    def _range(cls, value):
        if value is not None and not value[0] < value[1]:
            raise ValueError("histogram_range must be (low, high) with low < high")
        return value

    @model_validator(mode="after")
    def _stations_in_mm(self):
        for station in self.rejects:
            if station.downstream_mm is None:
                continue
            own = self.camera_calibration.get(station.camera) if station.camera else None
            if not (own or self.calibration).in_mm:
                raise ValueError(f"reject station {station.name or ''}: downstream_mm needs a calibration in mm for "
                                 f"camera {station.camera or '(every camera)'}")
        return self

    def calibration_of(self, camera: str) -> CalibrationConfig:
        return self.camera_calibration.get(camera, self.calibration)

    @property
    def active(self) -> bool:
        return bool(self.lines or self.zones or self.rejects) if self.enabled is None else self.enabled
