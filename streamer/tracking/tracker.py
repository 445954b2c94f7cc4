"""A tracker for a belt: every item moves with the belt, so one shared velocity predicts them all.

Why not a general-purpose multi-object tracker (ByteTrack, SORT, norfair): those give each track its own
Kalman filter stepped once per processed frame. On a belt the items' motion is one shared velocity, and the
stream drops frames by design (newest frame wins), so the step between processed frames varies; a new track's
filter starts at zero velocity, which on a dense belt (neighbours one diameter apart) moving half a diameter
per processed frame makes the first matches ambiguous. Here the belt velocity is one vector in pixels per
*source* frame (frame indices), estimated from all matched tracks (or configured), and bootstrapped from the
mode of all candidate displacements; matching is a Hungarian assignment (scipy) of centroids to predictions,
gated at a fraction of the item's size.

All positions are centroids in pixels; sizes are equivalent diameters in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

_UNMATCHED = 1e6
_MIN_MATCHES_TO_LEARN = 3


@dataclass(frozen=True)
class TrackerParams:
    """velocity: fixed belt velocity (vx, vy) in pixels per source frame; None estimates it.
    gate: a detection matches a prediction within this fraction of the item's diameter.
    max_missed: processed frames with detections a track coasts on the belt's motion without a match
        (occlusion); frames without any detection do not count.
    smoothing: weight of the newest velocity estimate (exponential average).
    search: how far (in item diameters per source-frame step) the bootstrap looks for the belt's motion."""

    velocity: tuple[float, float] | None = None
    gate: float = 0.5
    max_missed: int = 8
    smoothing: float = 0.3
    search: float = 1.0


def belt_shift(previous: np.ndarray, current: np.ndarray, radius: float, bin_px: float) -> np.ndarray | None:
    """The displacement most pairs of points agree on: float[2], or None without any pair within `radius`.

    previous float[M, 2], current float[N, 2]: a 2-D histogram of every displacement shorter than `radius`;
    the densest 3x3 bins win and the mean of the displacements in and next to it refines it.
    """
    if len(previous) == 0 or len(current) == 0:
        return None
    d = current[None, :, :] - previous[:, None, :]
    d = d[np.hypot(d[..., 0], d[..., 1]) <= radius]
    if len(d) == 0:
        return None
    bins = max(int(np.ceil(2 * radius / bin_px)), 1)
    hist, xe, ye = np.histogram2d(d[:, 0], d[:, 1], bins=bins, range=[[-radius, radius], [-radius, radius]])
    # Summed over 3x3 bins: a peak split by a bin edge still wins over a lone full bin.
    votes = cv2.boxFilter(hist.astype(np.float32), -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    i, j = np.unravel_index(np.argmax(votes), votes.shape)
    centre = np.array([(xe[i] + xe[i + 1]) / 2, (ye[j] + ye[j + 1]) / 2])
    near = d[np.all(np.abs(d - centre) <= 1.5 * bin_px, axis=1)]
    return near.mean(axis=0)


class BeltTracker:
    """Persistent track ids for detections frame after frame. Not thread-safe (one per camera)."""

    def __init__(self, params: TrackerParams = TrackerParams()):
        self.params = params
        self.velocity: np.ndarray | None = None if params.velocity is None else np.asarray(params.velocity, float)
        self._next_id = 1
        self._ids = np.zeros(0, np.int64)
        self._pos = np.zeros((0, 2))
        self._size = np.zeros(0)
        self._seen = np.zeros(0, np.int64)  # frame index of the last match
        self._missed = np.zeros(0, np.int64)
        self._last_index: int | None = None

    @property
    def active(self) -> int:
        """Tracks matched in the last update."""
        return int(np.count_nonzero(self._missed == 0))

    def reset(self) -> list[int]:
        """Forget every track (e.g. the source restarted its frame counter) -> the ended ids."""
        ended = self._ids.tolist()
        self._ids, self._pos, self._size = np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0)
        self._seen, self._missed = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._last_index = None
        return ended

    def update(self, index: int, centres: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Detections of frame `index` -> (int64[N] their track ids, ids of tracks that ended now).

        centres float[N, 2] pixels, sizes float[N] equivalent diameters in pixels (> 0)."""
        centres = np.asarray(centres, float).reshape(-1, 2)
        sizes = np.maximum(np.asarray(sizes, float).reshape(-1), 1.0)
        ended: list[int] = []
        if self._last_index is not None and index <= self._last_index:
            ended = self.reset()
        self._last_index = index
        if len(centres) == 0:
            # Nothing seen at all (an empty frame, or the presence gate answered 0): no evidence that the items
            # left, so no track ages; the belt's motion carries them to the next detections.
            return np.zeros(0, np.int64), ended
        steps = (index - self._seen).astype(float)
        ids = np.zeros(len(centres), np.int64)
        matched_det = np.zeros(len(centres), bool)
        matched_trk = np.zeros(len(self._ids), bool)
        if len(self._ids) and len(centres):
            velocity = self._velocity_for(centres, sizes, steps)
            predicted = self._pos + velocity[None, :] * steps[:, None]
            distance = np.hypot(*(predicted[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
            scale = np.maximum(self._size[:, None], sizes[None, :])
            cost = distance / scale
            cost[cost > self.params.gate] = _UNMATCHED
            rows, cols = linear_sum_assignment(cost)
            ok = cost[rows, cols] < _UNMATCHED
            rows, cols = rows[ok], cols[ok]
            self._learn_velocity(centres[cols] - self._pos[rows], steps[rows])
            self._pos[rows], self._size[rows] = centres[cols], sizes[cols]
            self._seen[rows], self._missed[rows] = index, 0
            ids[cols] = self._ids[rows]
            matched_det[cols], matched_trk[rows] = True, True
        # Unmatched tracks coast; those missed too long end.
        self._missed[~matched_trk] += 1
        keep = self._missed <= self.params.max_missed
        ended += self._ids[~keep].tolist()
        self._ids, self._pos, self._size = self._ids[keep], self._pos[keep], self._size[keep]
        self._seen, self._missed = self._seen[keep], self._missed[keep]
        new = np.flatnonzero(~matched_det)
        new_ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
        self._next_id += len(new)
        ids[new] = new_ids
        self._ids = np.concatenate([self._ids, new_ids])
        self._pos = np.concatenate([self._pos, centres[new]])
        self._size = np.concatenate([self._size, sizes[new]])
        self._seen = np.concatenate([self._seen, np.full(len(new), index, np.int64)])
        self._missed = np.concatenate([self._missed, np.zeros(len(new), np.int64)])
        return ids, ended

    def _velocity_for(self, centres: np.ndarray, sizes: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """The belt velocity to predict with; bootstrapped from displacements where none is known yet."""
        if self.velocity is not None:
            return self.velocity
        recent = self._missed == 0
        step = float(np.median(steps[recent])) if recent.any() else 1.0
        diameter = float(np.median(sizes))
        shift = belt_shift(self._pos[recent], centres, self.params.search * diameter + 1.0, max(diameter / 8, 1.0))
        return np.zeros(2) if shift is None else shift / max(step, 1.0)

    def _learn_velocity(self, displacements: np.ndarray, steps: np.ndarray) -> None:
        # Once the belt's velocity is known, a few matches (a frame the segmenter mostly missed) say too little
        # to move it; before, any match is better than none.
        if self.params.velocity is not None or len(displacements) == 0:
            return
        if self.velocity is not None and len(displacements) < _MIN_MATCHES_TO_LEARN:
            return
        estimate = np.median(displacements / np.maximum(steps, 1.0)[:, None], axis=0)
        alpha = self.params.smoothing
        self.velocity = estimate if self.velocity is None else (1 - alpha) * self.velocity + alpha * estimate
