"""The typed objects that travel through every stage of the pipeline.

Masks are kept cropped to their boxes: a dense 1080p frame holds hundreds of objects, and full-frame
masks would cost objects x frame pixels in memory and in every step after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np


@dataclass
class Instance:
    """One segmented object.

    Attributes:
        id: 0-based index in the result, stable for one result only.
        score: the decoder's confidence for this mask, in [0, 1] for the embedded engines and SAM's IoU prediction.
        bbox: (x0, y0, x1, y1) integer pixel box, x1/y1 exclusive, inside the frame.
        mask: bool[y1 - y0, x1 - x0], the object's pixels inside `bbox`.
        point: (x, y) the point prompt that produced this instance.
        track_id: the persistent id of the item across frames where tracking runs (streamer.stream.tally), else None.
        measurements: float64[len(streamer.tracking.measure.FIELDS)] this instance's figures where tracking runs.
        product: the name of the product it is one of, where a camera counts several (streamer.persense.products),
            else None.
    """

    id: int
    score: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray
    point: tuple[float, float] = (float("nan"), float("nan"))
    track_id: int | None = None
    measurements: np.ndarray | None = None
    product: str | None = None

    # Cached: masks are not modified after an instance is made, and dense frames ask for these per object.
    @cached_property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @cached_property
    def centroid(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.bbox
        m = cv2.moments(self.mask.view(np.uint8), binaryImage=True) if self.mask.size else {"m00": 0}
        if m["m00"] == 0:
            return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        return (m["m10"] / m["m00"] + x0, m["m01"] / m["m00"] + y0)

    def paste(self, canvas: np.ndarray, value=True) -> None:
        """Write this instance's mask into a full-frame array (canvas[H, W]) in place."""
        x0, y0, x1, y1 = self.bbox
        canvas[y0:y1, x0:x1][self.mask] = value


@dataclass
class SegmentationResult:
    """What the pipeline returns for one frame; serialised by `streamer.schema`.

    Attributes:
        width, height: the frame's size in pixels.
        instances: the de-duplicated objects, ids 0..count-1.
        density_count: the density map generator's count estimate C of the last pass.
        points: float[P, 2] the point prompts (x, y) decoded in the last pass.
        timings_ms: stage name -> milliseconds spent on this frame.
        match_quality: how alike the frame's objects are to the support, on the support's own scale (1: as
            alike as the support object to itself; 0: unrelated content); 0 with no object.
        tally: header fields the stream's tracking adds (tracks, passed_total, ...); empty without tracking.
        label: the support object's class label (the paper's CLE, or support.label), or None without one.
        reason: why the frame counts 0 when a gate decided it (e.g. the grounding detector found no box); "" else.
        negatives: the negative examples ("not this") in force; 0 without.
        suppressed_by_negative: the objects found but not counted because they match a negative example better
            than the support (streamer.persense.negatives).
        products: where a camera counts several products: product name -> its figures (count, label, support_id,
            match_quality, density_count, negatives, suppressed_by_negative, claimed_by_other); empty otherwise.
        product: the name of the camera's one product (streamer.persense.products), for its metrics; None with
            several (each instance names its own) or outside a stream. Not published.
    """

    width: int
    height: int
    instances: list[Instance]
    density_count: float = 0.0
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    timings_ms: dict[str, float] = field(default_factory=dict)
    match_quality: float = 0.0
    tally: dict = field(default_factory=dict)
    label: str | None = None
    reason: str = ""
    negatives: int = 0
    suppressed_by_negative: int = 0
    products: dict = field(default_factory=dict)
    product: str | None = None

    @property
    def count(self) -> int:
        return len(self.instances)

    def union_mask(self) -> np.ndarray:
        """bool[H, W]: the union of all instance masks (what the paper's mIoU is computed on)."""
        canvas = np.zeros((self.height, self.width), dtype=bool)
        for inst in self.instances:
            inst.paste(canvas)
        return canvas

    def label_map(self) -> np.ndarray:
        """uint16[H, W]: 0 is background, instance i is i + 1 (later instances overwrite earlier ones)."""
        canvas = np.zeros((self.height, self.width), dtype=np.uint16)
        for inst in self.instances:
            inst.paste(canvas, inst.id + 1)
        return canvas
