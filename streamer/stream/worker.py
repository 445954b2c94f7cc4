"""The inference thread: takes the newest frame of each camera in turn, segments it, hands it on.

PerSense is not thread-safe, so everything that touches it (segment, set_support) runs on this thread;
other threads ask through `call`, which the thread serves between frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Protocol

from streamer.errors import UserError
from streamer.persense.pipeline import PerSense
from streamer.sources.base import Frame
from streamer.stream.metrics import StreamMetrics
from streamer.stream.slots import FrameSlots
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)


class ResultSink(Protocol):
    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool: ...


class InferenceWorker:
    """Results of cameras whose slots keep every frame (FrameSlots.keeps_every_frame) are not dropped
    when the sink is full: the sink blocks instead."""

    def __init__(
        self,
        persense: PerSense,
        slots: FrameSlots,
        sink: ResultSink,
        metrics: StreamMetrics,
    ):
        self.persense = persense
        self.slots = slots
        self.sink = sink
        self.metrics = metrics
        self.paused = threading.Event()
        self.processed: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.last_count: dict[str, int] = {}
        self._calls: queue.SimpleQueue[tuple[Callable[[], object], Future]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the frame in flight (up to `timeout`), then end the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the frame in flight did not finish within %.0f s; leaving it", timeout)
        self._fail_calls(RuntimeError("the processor is stopping"))

    def call(self, fn: Callable[[], object], timeout: float) -> object:
        """Run fn on the inference thread between frames; its result, or its exception re-raised here."""
        if not self._thread.is_alive():
            raise RuntimeError("the inference thread is not running")
        future: Future = Future()
        self._calls.put((fn, future))
        return future.result(timeout)

    # -- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._serve_calls()
            frame = self.slots.take(0.1)
            if frame is None:
                continue
            try:
                if self.paused.is_set():
                    self.metrics.frame(frame.camera, "dropped_paused")
                else:
                    self._process(frame)
            finally:
                self.slots.task_done()

    def _process(self, frame: Frame) -> None:
        camera = frame.camera
        try:
            self.metrics.stage.labels(camera, "capture").observe(max(time.time() - frame.capture_ts, 0.0))
            support = self.persense.support
            result = self.persense.segment(frame.image)
        except Exception as exc:  # one bad frame must not end the stream
            n = self.failed[camera] = self.failed.get(camera, 0) + 1
            self.metrics.frame(camera, "failed")
            if n == 1 or n % 100 == 0:
                log.warning("camera %s: frame %d failed (%d so far): %s", camera, frame.index, n, exc,
                            exc_info=not isinstance(exc, UserError))
            return
        self.metrics.frame(camera, "processed")
        self.metrics.observe_stages(camera, result.timings_ms)
        self.processed[camera] = self.processed.get(camera, 0) + 1
        self.last_count[camera] = result.count
        keep = self.slots.keeps_every_frame(camera)
        self.sink.submit(frame, result, support.support_id if support else "", wait=keep)

    def _serve_calls(self) -> None:
        while True:
            try:
                fn, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed back to the caller, who decides
                future.set_exception(exc)

    def _fail_calls(self, exc: Exception) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
