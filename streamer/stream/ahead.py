"""When to encode the next frame while the current one is segmented (`stream.encode_ahead`).

Encoding frame t+1 as soon as frame t's segmentation starts gives the throughput of max(encoder, rest) but makes
frame t+1 wait, already taken, until the segmenter is free: up to one frame of extra latency, and a staler
frame than the camera has by then. Starting it `rest - encoder` later keeps the throughput and takes the newest
frame just in time: where the encoder is quick (a CPU pipeline with a light encoder) this is almost the
sequential loop; where it is slow (a ViT on a GPU beside CPU stages) the two overlap fully.
"""

from __future__ import annotations

import threading
import time


def encode_ahead_enabled(setting: bool | None, encoder) -> bool:
    """`stream.encode_ahead`: true, false, or null (the default) for on where the encoder runs on a GPU.

    On a CPU the encoder and the rest share the cores (and Python's lock), so overlapping them gains little and
    costs both some speed: measured with the embedded engines on 2 cores, 20.9 frames/s with it, 22.9 without.
    """
    if setting is not None:
        return setting
    return getattr(encoder, "device", "cpu") == "cuda"


class JustInTime:
    """Running estimates of the encoder's and the rest's durations, and the moment to start the next encoding.

    Thread-safe: the segmenting thread reports its frames, the encoding thread asks `delay_s`.

    Args:
        smoothing: weight of the newest duration in the running averages.
        margin: the encoder's estimate is stretched by this factor, so that a slower encoding than usual
            costs little idle time of the segmenter.
    """

    def __init__(self, smoothing: float = 0.2, margin: float = 1.25) -> None:
        self.smoothing = smoothing
        self.margin = margin
        self._lock = threading.Lock()
        self._encode_s: float | None = None
        self._rest_s: float | None = None
        self._segment_started: float | None = None

    def _average(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.smoothing * (new - old)

    def encoded(self, seconds: float) -> None:
        with self._lock:
            self._encode_s = self._average(self._encode_s, seconds)

    def segment_started(self) -> None:
        with self._lock:
            self._segment_started = time.monotonic()

    def segment_ended(self) -> None:
        with self._lock:
            if self._segment_started is not None:
                self._rest_s = self._average(self._rest_s, time.monotonic() - self._segment_started)
            self._segment_started = None

    def delay_s(self) -> float:
        """Seconds to wait before taking and encoding the next frame (0: now)."""
        with self._lock:
            started, encode_s, rest_s = self._segment_started, self._encode_s, self._rest_s
        if started is None or encode_s is None or rest_s is None:
            return 0.0  # the segmenter is idle, or nothing is known yet: no reason to wait
        return max(started + rest_s - self.margin * encode_s - time.monotonic(), 0.0)
