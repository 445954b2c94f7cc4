"""What the pipeline's steps share: the support reduced to what every frame needs, a frame's common inputs, the
stage timer, and the size tests on boxes."""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from engines.interfaces import ImageEmbedding, PromptGuidance, SupportModel
from streamer.persense.presence import MatchCalibration
from streamer.persense.scale_check import SupportProfile
from streamer.types import Instance

# The stages a frame goes through, in order: `segment` reports the middle six in SegmentationResult.timings_ms;
# the stream adds capture (before) and publish (after). Metrics and benchmarks label by these names.
STAGES = ("capture", "encode", "similarity", "density", "prompts", "decode", "postprocess", "publish")


@dataclass(frozen=True)
class Support:
    """The one-shot support set, reduced to what every frame needs."""

    prototype: np.ndarray  # float32[C], L2-normalised
    object_size: tuple[float, float]  # (w, h) of the support mask's box, a fallback exemplar size
    support_id: str  # content hash of image + mask + models: names the support in published results
    calibration: MatchCalibration  # the support's similarity to itself: the scale of match quality
    image_hw: tuple[int, int] = (0, 0)  # the support image's (H, W)
    object_radius: float = 0.0  # sqrt(area / pi) of the support mask, pixels: the objects' scale
    warnings: tuple[str, ...] = ()  # what a person should know about this support (see support_checks)
    label: str | None = None  # the object's class label (the paper's CLE, or given), None without one
    profile: SupportProfile | None = None  # the object's radial intensity profile, for the scale check
    model: SupportModel | None = None  # what a SupportLearner encoder learnt of the object (None: the prototype)
    object_mask: np.ndarray | None = None  # bool[h, w] the support mask cropped to the object's box
    # float32[n, C] the feature cells inside the support object, L2-normalised (streamer.persense.negatives): what a
    # negative example must not look like; None where the prototype came from the cache (no encoder pass)
    object_cells: np.ndarray | None = None
    # float64[3] the support object's median RGB, the light a frame under another one is relit to
    # (streamer.persense.relight); None where unknown or the object too small to relight for
    object_rgb: np.ndarray | None = None


@dataclass(frozen=True)
class FrameInputs:
    """What every pass over one frame shares."""

    image: np.ndarray  # uint8[H, W, 3] RGB
    embedding: ImageEmbedding
    similarity: np.ndarray  # float32[H, W]
    gate_boxes: np.ndarray | None
    guidance: PromptGuidance  # the first pass's (target-guided where configured)
    scale_only: PromptGuidance  # the feedback passes'
    timer: "StageTimer"


def support_id_for(image_rgb: np.ndarray, mask: np.ndarray, engines_name: str) -> str:
    digest = hashlib.sha256()
    digest.update(engines_name.encode())
    # The arrays' own memory is hashed (no bytes copy: 150 MB for a 50-megapixel support); the same digest.
    digest.update(memoryview(np.ascontiguousarray(image_rgb)).cast("B"))
    digest.update(memoryview(np.packbits(mask)).cast("B"))
    digest.update(str(image_rgb.shape).encode())
    return digest.hexdigest()[:16]


def linear_size(box: tuple[float, float, float, float]) -> float:
    """sqrt(w * h) of an (x0, y0, x1, y1) box."""
    x0, y0, x1, y1 = box
    return float(np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0)))


def similar_size(box: tuple[float, float, float, float], size: tuple[float, float], tolerance: float) -> bool:
    """The box's linear size is within a factor `tolerance` of the support object's (w, h)."""
    found = linear_size(box)
    expected = linear_size((0.0, 0.0, size[0], size[1]))
    return expected / tolerance <= found <= expected * tolerance


def at_frame_edge(point: tuple[float, float], frame_wh: tuple[int, int], object_w: float, object_h: float) -> bool:
    """Whether a point lies within a quarter of the support object's size of the frame's edge."""
    x, y = point
    w, h = frame_wh
    return min(x, w - 1 - x) < 0.25 * object_w or min(y, h - 1 - y) < 0.25 * object_h


@dataclass(frozen=True)
class Found:
    """One look at a frame: its objects before the presence gate, and what the steps after it need."""

    instances: list[Instance]
    points: np.ndarray  # float[P, 2] the last pass's point prompts (x, y)
    count: float  # the density map generator's count of the last pass
    quality: float  # the frame's match quality (streamer.persense.presence)
    embedding: ImageEmbedding
    gate_boxes: np.ndarray | None


class StageTimer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class EncodedFrame:
    """A frame's encoder output, computed ahead of the rest of `segment` (see PerSense.encode)."""

    embedding: ImageEmbedding
    encode_ms: float
