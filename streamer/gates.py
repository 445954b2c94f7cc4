"""Gate boxes for PPSM's box gating: none, a fixed region of interest, or a detector engine."""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from engines.interfaces import GateDetector, TextPromptedDetector
from streamer.config import GateConfig
from streamer.errors import UserError


class Gate(Protocol):
    def boxes(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """-> float[B, 4] (x0, y0, x1, y1) boxes, most confident first, or None for no gating."""
        ...

    def why_empty(self) -> str:
        """Why the last `boxes` was empty, in words for the result (the frame then counts 0)."""
        ...


class NoGate:
    def boxes(self, image_rgb: np.ndarray) -> None:
        return None

    def why_empty(self) -> str:
        return ""


class RoiGate:
    """A fixed region of interest, e.g. the belt area of a conveyor; fractions (<= 1) scale with the frame."""

    def __init__(self, roi: tuple[float, float, float, float]):
        self.roi = np.asarray(roi, np.float32)

    def boxes(self, image_rgb: np.ndarray) -> np.ndarray:
        h, w = image_rgb.shape[:2]
        roi = self.roi.copy()
        if np.all(roi <= 1.0):
            roi *= np.array([w, h, w, h], np.float32)
        return roi[None, :]

    def why_empty(self) -> str:
        return ""


class DetectorGate:
    """Boxes from a detector engine (e.g. the text-grounded detector), above a confidence, best first.

    With every_n_frames > 1 the detector runs on every N-th frame and its boxes serve the frames in between (a
    detector can cost more than the rest of a frame; on a belt the boxes then lag the objects by up to N - 1
    frames)."""

    def __init__(self, detector: GateDetector, min_score: float, every_n_frames: int = 1):
        self.detector = detector
        self.min_score = min_score
        self.every_n_frames = max(int(every_n_frames), 1)
        self._frames = 0
        self._boxes: np.ndarray | None = None

    @property
    def needs_label(self) -> bool:
        """Whether the detector finds what a text names (then `set_label` must be called before `boxes`)."""
        return isinstance(self.detector, TextPromptedDetector)

    def set_label(self, label: str) -> None:
        self.detector.set_label(label)
        self._boxes = None  # boxes of the previous label must not gate the new one's frames
        self._frames = 0

    def boxes(self, image_rgb: np.ndarray) -> np.ndarray:
        if self._boxes is None or self._frames % self.every_n_frames == 0:
            self._boxes = self._detect(image_rgb)
        self._frames += 1
        return self._boxes

    def _detect(self, image_rgb: np.ndarray) -> np.ndarray:
        boxes, scores = self.detector.detect(image_rgb)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        keep = scores >= self.min_score
        order = np.argsort(-scores[keep], kind="stable")
        return boxes[keep][order]

    def why_empty(self) -> str:
        describe = getattr(self.detector, "describe_empty", None)
        if describe is not None:
            return describe()
        return f"the gate detector found no box above min_score {self.min_score}"


def build_gate(config: GateConfig) -> Gate:
    if config.kind == "none":
        return NoGate()
    if config.kind == "grounding":
        if config.grounding is None:
            raise UserError("gate.kind is 'grounding' but gate.grounding.model_dir is not set")
        from streamer.engine_factory import build_grounding_detector

        # Its own thresholds decide; min_score 0 keeps every box it returns.
        return DetectorGate(build_grounding_detector(config.grounding), 0.0, config.every_n_frames)
    if config.kind == "roi":
        if config.roi is None:
            raise UserError("gate.kind is 'roi' but gate.roi is not set (x0, y0, x1, y1)")
        return RoiGate(config.roi)
    if not config.detector or ":" not in config.detector:
        raise UserError("gate.kind is 'detector' but gate.detector is not 'module:factory'")
    module_name, factory_name = config.detector.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load gate detector {config.detector}: {exc}") from None
    return DetectorGate(factory(), config.min_score, config.every_n_frames)
