"""What the console shows live: the newest result of each camera, kept by reference, rendered only on demand.

The inference thread hands each result to `LiveView.offer` (through `ResultTee`), which keeps a reference and
updates two running figures; that is all it costs while no browser watches. Rendering (overlay + JPEG) happens
in `LiveView.jpeg`, called by a watching browser's stream at most `max_fps` times a second, and a frame
already rendered is not rendered again: all viewers share one render per result (`cached` hands it out without
a thread). Viewers are capped (`max_viewers`): each costs socket writes and event-loop time that the pipeline's
threads would miss; when the last one leaves, the rendered frame is dropped and the allocator's free memory is
given back to the system.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass


from streamer.memory import trim_memory
from streamer.console.picture import draw, product_colour
from streamer.sources.base import Frame
from streamer.stream.messages import encode_jpeg
from streamer.types import SegmentationResult

_RATE_WEIGHT = 0.1  # exponential smoothing of frames/s and latency


@dataclass(frozen=True)
class Shown:
    """One camera's newest result, as the inference thread left it (arrays are not copied)."""

    frame: Frame
    result: SegmentationResult
    support_id: str
    done_ts: float  # unix seconds when the result was ready


class ViewersFull(Exception):
    """The cap on live viewers is reached."""


class LiveView:
    """Thread-safe. `watchers` counts the open live streams; nothing is rendered while it is 0."""

    def __init__(self, cameras: list[str], max_viewers: int = 4):
        self._lock = threading.Lock()
        self._latest: dict[str, Shown] = {}
        self._interval_s: dict[str, float] = {}  # between results, smoothed
        self._latency_s: dict[str, float] = {}
        self._rendered: dict[tuple[str, str], tuple[Shown, bytes]] = {}  # (camera, style) -> (the Shown, its JPEG)
        self.cameras = list(cameras)
        self.watchers = 0
        self.renders = 0
        self.max_viewers = max_viewers
        self.closed = threading.Event()  # set when the processor stops: the live streams end on their own

    def close(self) -> None:
        """The processor is stopping: every live stream ends after its current frame."""
        self.closed.set()

    # -- the inference thread ------------------------------------------------------------------------
    def offer(self, frame: Frame, result: SegmentationResult, support_id: str) -> None:
        now = time.time()
        shown = Shown(frame, result, support_id, now)
        with self._lock:
            previous = self._latest.get(frame.camera)
            self._latest[frame.camera] = shown
            if previous is not None and now > previous.done_ts:
                # The interval is smoothed, not its inverse: with several workers, results that waited for an
                # earlier frame come out a moment apart, and their rate would swamp the mean.
                self._interval_s[frame.camera] = _smooth(self._interval_s.get(frame.camera), now - previous.done_ts)
            self._latency_s[frame.camera] = _smooth(self._latency_s.get(frame.camera),
                                                    max(now - frame.capture_ts, 0.0))

    # -- the console ---------------------------------------------------------------------------------
    def latest(self, camera: str) -> Shown | None:
        with self._lock:
            return self._latest.get(camera)

    def figures(self, camera: str) -> dict:
        """The camera's running figures: frames/s and capture-to-result latency (smoothed), last count."""
        with self._lock:
            shown = self._latest.get(camera)
            interval, latency = self._interval_s.get(camera), self._latency_s.get(camera)
        fps = None if interval is None else 1.0 / interval
        return {
            "fps": None if fps is None else round(fps, 2),
            "latency_ms": None if latency is None else round(latency * 1000.0, 1),
            "count": shown.result.count if shown else None,
            "frame_index": int(shown.frame.index) if shown else None,
            "support_id": shown.support_id if shown else None,
            # How alike the objects are to the support (1: as the support to itself; see the result schema).
            "match_quality": round(float(shown.result.match_quality), 3) if shown else None,
            # How old these figures are: the page greys figures that are not of a frame just seen.
            "result_age_s": round(max(time.time() - shown.done_ts, 0.0), 1) if shown else None,
            "reason": shown.result.reason if shown else "",
            "truth_count": shown.frame.truth_count if shown else None,
            # Where a counting line is set (the tally's header fields): items passed so far.
            "passed_total": shown.result.tally.get("passed_total") if shown else None,
            # Where the camera counts several products or has negative examples (docs/products.md).
            **({"product_counts": shown.result.products} if shown and shown.result.products else {}),
            **({"suppressed_by_negative": shown.result.suppressed_by_negative}
               if shown and shown.result.negatives else {}),
        }

    def reserve(self) -> None:
        """Take a viewer's place (ViewersFull beyond `max_viewers`); `release` gives it back."""
        with self._lock:
            if self.watchers >= self.max_viewers:
                raise ViewersFull(f"{self.max_viewers} live views are open already; close one or raise "
                                  "stream.console.max_viewers")
            self.watchers += 1

    def release(self) -> None:
        with self._lock:
            self.watchers -= 1
            last = self.watchers == 0
            if last:
                self._rendered.clear()  # nobody watches: no frame is kept for them
        if last:
            trim_memory()

    @contextmanager
    def watching(self):
        """One viewer's place for the length of the block; ViewersFull beyond `max_viewers`."""
        self.reserve()
        try:
            yield
        finally:
            self.release()

    def cached(self, camera: str, style: str = "outline") -> tuple[int, bytes] | None:
        """The rendered JPEG of the camera's newest result in `style` when it is rendered already, else None
        (no work)."""
        with self._lock:
            shown, cached = self._latest.get(camera), self._rendered.get((camera, style))
        if shown is not None and cached is not None and cached[0] is shown:
            return int(shown.frame.index), cached[1]
        return None

    def jpeg(self, camera: str, style: str = "outline") -> tuple[int, bytes] | None:
        """(frame index, JPEG of the newest frame with its objects marked in the product's colour, as
        streamer.console.picture `style`), rendered once per result and style; None before the first result."""
        shown = self.latest(camera)
        if shown is None:
            return None
        with self._lock:
            cached = self._rendered.get((camera, style))
        if cached is not None and cached[0] is shown:
            return int(shown.frame.index), cached[1]
        data = encode_jpeg(draw(shown.frame.image, shown.result, product_colour(shown.support_id), style))
        with self._lock:
            if self.watchers:  # the last viewer may have left meanwhile: then nothing is kept for nobody
                self._rendered[(camera, style)] = (shown, data)
            self.renders += 1
        return int(shown.frame.index), data


class ResultTee:
    """The inference thread's sink: the publisher first, then the live view (a reference, no copy)."""

    def __init__(self, sink, live: LiveView):
        self._sink = sink
        self._live = live

    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool:
        accepted = self._sink.submit(frame, result, support_id, wait=wait)
        self._live.offer(frame, result, support_id)
        return accepted


def _smooth(previous: float | None, value: float) -> float:
    return value if previous is None else previous + _RATE_WEIGHT * (value - previous)
