"""Presence: how well a frame's objects match the support, on a scale the support calibrates itself.

The support image is compared with its own prototype once: its object's cells give the similarity that
"the same kind" reaches (`self_similarity`), the image's least alike cells what unrelated content
reaches (`floor`). A query object's match quality is its similarity on that scale: about 1 for objects as
alike as the support is to itself, about 0 for content as unrelated as the support image's least alike
part. A frame whose objects match far below the support's own level holds no object of its kind (an empty
belt, another product, a camera knocked off its view) and counts 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.persense.similarity import mask_coverage
from streamer.types import Instance

# Percentile of the support image's similarity taken as "unrelated content".
_FLOOR_PERCENTILE = 5.0


@dataclass(frozen=True)
class MatchCalibration:
    """self_similarity: median similarity inside the support object; floor: the support image's unrelated level."""

    self_similarity: float
    floor: float

    def quality(self, similarity: np.ndarray | float) -> np.ndarray:
        """Similarity -> match quality (1 = as alike as the support to itself, 0 = unrelated), not clipped."""
        span = max(self.self_similarity - self.floor, 1e-6)
        return (np.asarray(similarity, np.float64) - self.floor) / span


def calibrate(similarity_grid: np.ndarray, mask: np.ndarray) -> MatchCalibration:
    """The support image's similarity to its own prototype (float[h, w], the feature grid) and its mask
    (bool[H, W], any resolution) -> the calibration."""
    h, w = similarity_grid.shape
    coverage = mask_coverage(mask, (w, h))
    inside = coverage >= 0.5
    if not inside.any():
        inside = coverage >= coverage.max() * 0.5
    self_similarity = float(np.median(similarity_grid[inside]))
    floor = float(np.percentile(similarity_grid, _FLOOR_PERCENTILE))
    return MatchCalibration(self_similarity, min(floor, self_similarity - 1e-3))


def instance_similarity(instances: list[Instance], similarity: np.ndarray) -> np.ndarray:
    """float64[N]: each instance's median similarity over its mask (similarity: float[H, W] at frame size).

    The median, not the mean: a mask that takes in a rim of background is still judged by the object."""
    values, owners = [], []
    for k, inst in enumerate(instances):
        x0, y0, x1, y1 = inst.bbox
        # Every other pixel each way: the similarity map is a resampled feature grid, coarser than that.
        crop, mask = similarity[y0:y1:2, x0:x1:2], inst.mask[::2, ::2]
        inside = crop[mask] if mask.any() else crop.ravel()
        if inside.size == 0:
            inside = np.zeros(1, np.float32)
        values.append(inside)
        owners.append(np.full(inside.size, k))
    if not values:
        return np.zeros(0)
    # One sort of every mask's values (grouped by instance): the medians of all instances at once.
    value, owner = np.concatenate(values).astype(np.float64), np.concatenate(owners)
    # Each instance's values shifted past the previous instance's (the similarity is a cosine, in [-1, 1]):
    # one plain sort then orders them by instance, and by value within it.
    ordered = np.sort(value + 4.0 * owner) - 4.0 * np.sort(owner)
    counts = np.bincount(owner, minlength=len(instances))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    low = ordered[starts + (counts - 1) // 2]
    high = ordered[starts + counts // 2]
    return (low + high) / 2


def frame_quality(qualities: np.ndarray) -> float:
    """The frame's match quality: the median of its objects' (0 with no object)."""
    return float(np.median(qualities)) if len(qualities) else 0.0
