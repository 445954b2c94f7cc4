"""Tiny stand-ins for the stream processor's unit tests: blob frames, a blob 'engine set', list sources.

The engines are real implementations of the engine interfaces on a trivial problem (bright squares on a
black belt), so the real PerSense pipeline runs on them in milliseconds. No tests here.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
from scipy import ndimage

from engines.interfaces import DecoderOutput, DensityOutput, EngineSet, ImageEmbedding
from streamer.sources.base import Frame, SourceEnded, SourceError

CELL = 4  # pixels per feature cell


def blob_frame(n: int, seed: int = 0, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """uint8[H, W, 3]: `n` separate 12 px orange squares on black, on a regular grid shuffled by seed."""
    w, h = size
    image = np.zeros((h, w, 3), np.uint8)
    slots = [(x, y) for y in range(4, h - 16, 20) for x in range(4, w - 16, 20)]
    rng = np.random.default_rng(seed)
    for i in rng.permutation(len(slots))[:n]:
        x, y = slots[i]
        image[y : y + 12, x : x + 12] = (220, 120, 40)
    return image


def blob_support() -> tuple[np.ndarray, np.ndarray]:
    image = blob_frame(1, seed=3)
    return image, image[:, :, 0] > 100


def _blobs(image: np.ndarray) -> np.ndarray:
    return image[:, :, 0] > 100


class BlobEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def encode(self, image_rgb: np.ndarray) -> ImageEmbedding:
        self.calls += 1
        h, w = image_rgb.shape[:2]
        small = cv2.resize(image_rgb, (w // CELL, h // CELL), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        features = np.concatenate([small, np.full(small.shape[:2] + (1,), 0.2, np.float32)], axis=2)
        grid = features.transpose(2, 0, 1).copy()
        return ImageEmbedding(grid, (h, w), grid.shape[1:], payload=_blobs(small * 255))


class BlobDecoder:
    def decode_points(self, embedding, points_xy, guidance=None) -> DecoderOutput:
        components, _ = ndimage.label(embedding.payload)
        labels = np.zeros(components.shape, np.int32)
        gh, gw = components.shape
        for i, (x, y) in enumerate(np.asarray(points_xy).reshape(-1, 2)):
            cx, cy = min(int(x // CELL), gw - 1), min(int(y // CELL), gh - 1)
            if components[cy, cx]:
                labels[(components == components[cy, cx]) & (labels == 0)] = i + 1
        return DecoderOutput(logits=None, scores=np.full((len(points_xy), 1), 0.9, np.float32), valid_hw=(gh, gw),
                             labels=labels)


class BlobDensity:
    def density(self, image_rgb, embedding, exemplar_boxes) -> DensityOutput:
        mask = _blobs(image_rgb)
        _, n = ndimage.label(mask)
        blurred = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)
        total = float(blurred.sum())
        density = blurred * (n / total) if total > 0 else blurred
        return DensityOutput(density.astype(np.float32), float(n))


def blob_engines() -> EngineSet:
    return EngineSet(BlobEncoder(), BlobDecoder(), BlobDensity(), "test-blobs")


class ListSource:
    """A finite file-like source: the given images, then SourceEnded."""

    live = False

    def __init__(self, camera: str, images: list[np.ndarray], truth: list[int] | None = None):
        self.camera, self.images, self.truth = camera, images, truth
        self.i = 0

    def open(self) -> None:
        pass

    def read(self, timeout: float) -> Frame | None:
        if self.i >= len(self.images):
            raise SourceEnded()
        frame = Frame(self.images[self.i], self.i, time.time(), self.camera,
                      self.truth[self.i] if self.truth else None)
        self.i += 1
        return frame

    def close(self) -> None:
        pass


class LiveSource(ListSource):
    """A live camera cycling through its images at `fps`, for ever."""

    live = True

    def __init__(self, camera: str, images: list[np.ndarray], fps: float = 50.0):
        super().__init__(camera, images)
        self.period = 1.0 / fps
        self._stop = threading.Event()

    def read(self, timeout: float) -> Frame | None:
        time.sleep(self.period)
        frame = Frame(self.images[self.i % len(self.images)], self.i, time.time(), self.camera)
        self.i += 1
        return frame


class DeadSource(ListSource):
    """A camera that is never there."""

    live = True

    def open(self) -> None:
        raise SourceError("connection refused")
