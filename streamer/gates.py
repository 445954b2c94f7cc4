"""Gate boxes for PPSM's box gating: none, a fixed region of interest, or a detector engine."""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from engines.interfaces import GateDetector
from streamer.config import GateConfig
from streamer.errors import UserError


class Gate(Protocol):
    def boxes(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """-> float[B, 4] (x0, y0, x1, y1) boxes, most confident first, or None for no gating."""
        ...


class NoGate:
    def boxes(self, image_rgb: np.ndarray) -> None:
        return None


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


class DetectorGate:
    """Boxes from a detector engine (e.g. a text-grounded detector), above a confidence, best first."""

    def __init__(self, detector: GateDetector, min_score: float):
        self.detector = detector
        self.min_score = min_score

    def boxes(self, image_rgb: np.ndarray) -> np.ndarray:
        boxes, scores = self.detector.detect(image_rgb)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        keep = scores >= self.min_score
        order = np.argsort(-scores[keep], kind="stable")
        return boxes[keep][order]


def build_gate(config: GateConfig) -> Gate:
    if config.kind == "none":
        return NoGate()
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
    return DetectorGate(factory(), config.min_score)
