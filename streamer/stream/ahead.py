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
from collections.abc import Callable


def encode_ahead_enabled(setting: bool | None, encoder) -> bool:
    """`stream.encode_ahead`: true, false, or null (the default) for on where the encoder runs on a GPU.

    On a CPU the encoder and the rest share the cores (and Python's lock), so overlapping them gains nothing:
    measured with the embedded engines on 2 cores, 15.6-17.2 frames/s with it and 16.8-18.2 without.
    """
    if setting is not None:
        return setting
    return getattr(encoder, "device", "cpu") == "cuda"


class JustInTime:
    """Running estimates of the encoder's and the rest's durations, the moment to start the next encoding, and
    the one-place hand-off of encoded frames from the encoder thread to the segmenting thread.

    Taking a frame from the hand-off and marking the segment's start are one step, so the encoder never measures
    its delay from a segment that has already ended. Thread-safe.

    Args:
        smoothing: weight of the newest duration in the running averages.
        margin: the encoder's estimate is stretched by this factor, so that a slower encoding than usual
            costs little idle time of the segmenter.
    """

    def __init__(self, smoothing: float = 0.2, margin: float = 1.25) -> None:
        self.smoothing = smoothing
        self.margin = margin
        self._cond = threading.Condition()
        self._encode_s: float | None = None
        self._rest_s: float | None = None
        self._segment_started: float | None = None
        self._held: object | None = None

    def _average(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.smoothing * (new - old)

    # -- the estimates -----------------------------------------------------------------------------------
    def encoded(self, seconds: float) -> None:
        with self._cond:
            self._encode_s = self._average(self._encode_s, seconds)

    def segment_started(self) -> None:
        with self._cond:
            self._segment_started = time.monotonic()

    def segment_ended(self) -> None:
        with self._cond:
            if self._segment_started is not None:
                self._rest_s = self._average(self._rest_s, time.monotonic() - self._segment_started)
            self._segment_started = None
            self._cond.notify_all()

    def delay_s(self) -> float:
        """Seconds to wait before reading and encoding the next frame (0: now)."""
        with self._cond:
            return self._delay_locked()

    def _delay_locked(self) -> float:
        started, encode_s, rest_s = self._segment_started, self._encode_s, self._rest_s
        if started is None or encode_s is None or rest_s is None:
            return 0.0  # the segmenter is idle, or nothing is known yet: no reason to wait
        return max(started + rest_s - self.margin * encode_s - time.monotonic(), 0.0)

    # -- the hand-off ------------------------------------------------------------------------------------
    def wait_until_due(self, stop: threading.Event, poll_s: float = 0.05) -> None:
        """Block the encoder thread until nothing waits in the hand-off and the next encoding is due (or stop)."""
        with self._cond:
            while not stop.is_set():
                delay = poll_s if self._held is not None else self._delay_locked()
                if delay <= 0:
                    return
                self._cond.wait(min(delay, poll_s))

    def hand_over(self, item: object, receiver_alive: Callable[[], bool]) -> bool:
        """Put an encoded frame in the hand-off, waiting while it is full; False if the receiver is gone."""
        with self._cond:
            while self._held is not None:
                if not receiver_alive():
                    return False
                self._cond.wait(0.1)
            self._held = item
            self._cond.notify_all()
            return True

    def take(self, timeout: float) -> object | None:
        """The frame waiting in the hand-off (its segment starts now), or None after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._held is not None, timeout):
                return None
            item, self._held = self._held, None
            self._segment_started = time.monotonic()
            self._cond.notify_all()
            return item

    def holding(self) -> bool:
        with self._cond:
            return self._held is not None

    def drain(self) -> object | None:
        """What still waits in the hand-off (taken out), for a shutdown to account for it."""
        with self._cond:
            item, self._held = self._held, None
            self._cond.notify_all()
            return item
