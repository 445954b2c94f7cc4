"""The inference thread: takes the newest frame of each camera in turn, segments it, hands it on.

PerSense is not thread-safe, so everything that touches it (segment, set_support) runs on this thread;
other threads ask through `call`, which the thread serves between frames. With `encode_ahead`, an encoder
thread takes the frames instead and runs PerSense.encode (the one part that may run on another thread) one frame
ahead: while frame t is segmented, frame t+1 is encoded, so with the encoder on a GPU a frame costs
max(encoder, rest) rather than their sum. Each encoding starts just in time and the encoded frame is handed over
through a one-place buffer (streamer.stream.ahead), so at most two frames are in flight and none is encoded in
vain.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Protocol

from streamer.errors import UserError
from streamer.persense.pipeline import EncodedFrame, PerSense
from streamer.sources.base import Frame
from streamer.stream.ahead import JustInTime
from streamer.stream.metrics import StreamMetrics
from streamer.stream.slots import DROP_SHUTDOWN, FrameSlots
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)


class ResultSink(Protocol):
    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool: ...


class WorkerBase:
    """What the stream's workers share: the calls served between frames, the counts, publishing a result and
    recording a failure. Results of cameras whose slots keep every frame (FrameSlots.keeps_every_frame) are not
    dropped when the sink is full: the sink blocks instead.

    pipelines: camera id -> the PerSense pipeline of its product (streamer.stream.products).
    """

    def __init__(self, pipelines: Callable[[str], PerSense], slots: FrameSlots, sink: ResultSink,
                 metrics: StreamMetrics):
        self.pipelines = pipelines
        self.slots = slots
        self.sink = sink
        self.metrics = metrics
        self.paused = threading.Event()
        self.processed: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.last_count: dict[str, int] = {}
        self._calls: queue.SimpleQueue[tuple[Callable[[], object], Future]] = queue.SimpleQueue()
        self._failures_lock = threading.Lock()  # failures may be counted by two threads
        self._stop = threading.Event()

    def _serving(self) -> bool:
        """Whether the thread that serves `call` runs."""
        raise NotImplementedError

    def call(self, fn: Callable[[], object], timeout: float) -> object:
        """Run fn on the inference thread between frames; its result, or its exception re-raised here."""
        if not self._serving():
            raise RuntimeError("the inference thread is not running")
        future: Future = Future()
        self._calls.put((fn, future))
        return future.result(timeout)

    def _calls_waiting(self) -> bool:
        return not self._calls.empty()

    def _take_frame(self) -> Frame | None:
        frame = self.slots.take(0.1)
        if frame is None and self.slots.closed:
            self._stop.wait(0.05)  # closed slots answer at once: do not spin until stop
        return frame

    def _dropped_while_paused(self, frame: Frame) -> bool:
        """True, and the frame counted as dropped, while the stream is paused."""
        if self.paused.is_set():
            self.metrics.frame(frame.camera, "dropped_paused")
            return True
        return False

    def _observe_capture(self, frame: Frame) -> None:
        self.metrics.stage.labels(frame.camera, "capture").observe(max(time.time() - frame.capture_ts, 0.0))

    def _record_failure(self, frame: Frame, exc: Exception, detail: str = "") -> None:
        """detail: the traceback where it was raised in another process (logged with the first failure)."""
        camera = frame.camera
        with self._failures_lock:
            n = self.failed[camera] = self.failed.get(camera, 0) + 1
        self.metrics.frame(camera, "failed")
        if n == 1 or n % 100 == 0:
            log.warning("camera %s: frame %d failed (%d so far): %s%s", camera, frame.index, n, exc,
                        f"\n{detail}" if detail and n == 1 else "",
                        exc_info=not detail and not isinstance(exc, UserError))

    def _publish(self, frame: Frame, result: SegmentationResult, support_id: str) -> None:
        camera = frame.camera
        self.metrics.frame(camera, "processed")
        self.metrics.observe_stages(camera, result.timings_ms)
        self.processed[camera] = self.processed.get(camera, 0) + 1
        self.last_count[camera] = result.count
        keep = self.slots.keeps_every_frame(camera)
        self.sink.submit(frame, result, support_id, wait=keep)

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


class InferenceWorker(WorkerBase):
    """One inference thread (`stream.workers: 1`), with an encoder thread where `encode_ahead`."""

    def __init__(
        self,
        pipelines: Callable[[str], PerSense],
        slots: FrameSlots,
        sink: ResultSink,
        metrics: StreamMetrics,
        encode_ahead: bool = False,
        batch_frames: int = 1,
        batch_wait_s: float = 0.005,
    ):
        """batch_frames: up to this many frames (the first, and those waiting or arriving within batch_wait_s)
        are encoded in one call (PerSense.encode_batch), then segmented one by one in the order taken."""
        super().__init__(pipelines, slots, sink, metrics)
        self._batch_frames = batch_frames
        self._batch_wait_s = batch_wait_s
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._encoder = (threading.Thread(target=self._encode_ahead, name="encoder", daemon=True)
                         if encode_ahead else None)
        self._schedule = JustInTime()

    def start(self) -> None:
        self._thread.start()
        if self._encoder is not None:
            self._encoder.start()

    def alive(self) -> bool:
        return self._thread.is_alive() and (self._encoder is None or self._encoder.is_alive())

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the frames in flight (up to `timeout`), then end the threads."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in (self._encoder, self._thread):
            if thread is not None and thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.0))
                if thread.is_alive():
                    log.warning("the frame in flight did not finish within %.0f s; leaving it", timeout)
        leftover = self._schedule.drain()
        if leftover is not None:
            self._drop_unsegmented(leftover[0])
        self._fail_calls(RuntimeError("the processor is stopping"))

    def _serving(self) -> bool:
        return self._thread.is_alive()

    # -- the threads -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set() or self._handover_pending():
            self._serve_calls()
            if self._batch_frames > 1:
                self._run_batch()
                continue
            frame, encoded = self._next()
            if frame is None:
                continue
            try:
                if not self._dropped_while_paused(frame):
                    self._process(frame, encoded)
            finally:
                if self._encoder is not None:
                    self._schedule.segment_ended()
                self.slots.task_done()

    def _run_batch(self) -> None:
        """Frames of several cameras encoded in one call, then segmented one by one in the order taken."""
        frames = self._take_batch()
        encodings: list[EncodedFrame | None] = [None] * len(frames)
        if frames and not self.paused.is_set():
            try:
                encodings = self.pipelines(frames[0].camera).encode_batch([frame.image for frame in frames])
            except Exception as exc:  # a frame the batch cannot take: each is encoded on its own, one fails alone
                log.debug("a batch of %d frames could not be encoded together: %s", len(frames), exc)
        for frame, encoded in zip(frames, encodings):
            try:
                if not self._dropped_while_paused(frame):
                    self._process(frame, encoded)
            finally:
                self.slots.task_done()

    def _take_batch(self) -> list[Frame]:
        """The next frame and those that wait, or arrive within batch_wait_s, up to batch_frames."""
        first = self._take_frame()
        if first is None:
            return []
        frames = [first]
        deadline = time.monotonic() + self._batch_wait_s
        while len(frames) < self._batch_frames:
            frame = self.slots.take(max(deadline - time.monotonic(), 0.0))
            if frame is None:
                break
            frames.append(frame)
        for frame in frames:
            self._observe_capture(frame)
        return frames

    def _next(self) -> tuple[Frame | None, EncodedFrame | None]:
        """The next frame to segment, and its encoding where the encoder thread made it."""
        if self._encoder is None:
            frame = self._take_frame()
            if frame is not None:
                self._observe_capture(frame)
            return frame, None
        item = self._schedule.take(0.1)  # also marks the segment's start for the encoder's schedule
        return item if item is not None else (None, None)

    def _handover_pending(self) -> bool:
        """After stop: frames the encoder thread has taken are still segmented, so none is lost silently."""
        return self._encoder is not None and (self._encoder.is_alive() or self._schedule.holding())

    def _encode_ahead(self) -> None:
        while not self._stop.is_set():
            # Just in time: the newest frame, ready about when the segmenter is free (see streamer.stream.ahead).
            self._schedule.wait_until_due(self._stop)
            frame = self._take_frame()
            if frame is None:
                continue
            self._observe_capture(frame)
            if self._dropped_while_paused(frame):
                self.slots.task_done()
                continue
            try:
                encoded = self.pipelines(frame.camera).encode(frame.image)
            except Exception as exc:  # one bad frame must not end the stream
                self._record_failure(frame, exc)
                self.slots.task_done()
                continue
            self._schedule.encoded(encoded.encode_ms / 1e3)
            # Waits while the previous frame is segmented; the inference thread drains this even after stop.
            if not self._schedule.hand_over((frame, encoded), self._thread.is_alive):
                self._drop_unsegmented(frame)

    def _drop_unsegmented(self, frame: Frame) -> None:
        """A taken frame that no thread will segment any more (the processor is stopping): counted, not lost."""
        self.metrics.frame(frame.camera, DROP_SHUTDOWN)
        self.slots.task_done()

    def _process(self, frame: Frame, encoded: EncodedFrame | None = None) -> None:
        camera = frame.camera
        try:
            pipeline = self.pipelines(camera)
            support = pipeline.support
            result = pipeline.segment(frame.image, encoded)
        except Exception as exc:  # one bad frame must not end the stream
            self._record_failure(frame, exc)
            return
        self._publish(frame, result, support.support_id if support else "")
