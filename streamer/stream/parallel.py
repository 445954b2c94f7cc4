"""Several frames in flight (`stream.workers` above 1): a dispatcher hands the newest frames to idle workers
(streamer.stream.lanes), a collector hands their outcomes on in the order the frames were taken.

Each taken frame gets the next sequence number, and its outcome waits in a bounded reorder buffer
(streamer.stream.reorder) until every earlier frame's is out: results reach the sink (tracking, tallies, the
publisher) in capture order, and a frame that failed is counted and logged in its place. At most
`_OPEN_PER_WORKER` frames per worker are between taken and handed on, so a slow frame holds up a bounded number.

Supports: calls (`call`: set_support, the console's requests) run on the dispatcher between frames, as with one
worker, once every frame in flight is out; a support they changed then goes to every worker before any later
frame, stamped with a version that each frame carries. So no frame mixes supports, and tracking is fed the
frames of the old support before it learns the new one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from streamer.errors import UserError, first_line
from streamer.persense.pipeline import PerSense, Support
from streamer.sources.base import Frame
from streamer.stream.lanes import ENDED, FAILED_START, OUTCOME, READY, Outcome
from streamer.stream.metrics import StreamMetrics
from streamer.stream.reorder import ReorderBuffer
from streamer.stream.slots import DROP_SHUTDOWN, FrameSlots
from streamer.stream.worker import ResultSink, WorkerBase

log = logging.getLogger(__name__)

_OPEN_PER_WORKER = 2  # frames taken and not yet handed on, per worker: a quick frame may overtake a slow one
_RESTARTS = 5  # workers restarted within _RESTART_WINDOW_S before the stream gives up on them
_RESTART_WINDOW_S = 60.0


class Lane(Protocol):
    index: int

    def start(self) -> None: ...
    def send_support(self, camera: str, version: int, support: Support) -> None: ...
    def submit(self, seq: int, camera: str, version: int, image: np.ndarray) -> None: ...
    def alive(self) -> bool: ...
    def request_stop(self) -> None: ...
    def stop(self, timeout: float) -> None: ...


@dataclass
class _Taken:
    frame: Frame
    lane: int
    support_id: str


class ParallelWorker(WorkerBase):
    """Args:
        pipelines: camera id -> the stream's own pipeline of its product: its support is the one in force (the
            workers get a copy of each new one); calls run beside them.
        cameras: the camera ids.
        make_lane: (worker index, results queue) -> a lane (ThreadLane or ProcessLane) that puts its
            (index, kind, payload) messages on that queue.
        workers: how many lanes.
        start_timeout_s: how long `start` waits for every worker to be ready (a large model loads in each).
    """

    def __init__(self, pipelines: Callable[[str], PerSense], cameras: list[str], slots: FrameSlots,
                 sink: ResultSink, metrics: StreamMetrics, make_lane: Callable[[int, queue.SimpleQueue], Lane],
                 workers: int, start_timeout_s: float = 300.0):
        super().__init__(pipelines, slots, sink, metrics)
        self.cameras = list(cameras)
        self.workers = workers
        self.start_timeout_s = start_timeout_s
        self.lane_cpu_s: dict[int, float] = {}  # each worker process's CPU seconds at its last frame
        self._make_lane = make_lane
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._lanes: list[Lane] = []
        self._idle: deque[int] = deque()
        self._busy: dict[int, int] = {}  # lane -> the sequence number it segments
        self._taken: dict[int, _Taken] = {}  # sequence number -> its frame, until handed on
        self._reorder: ReorderBuffer[tuple[_Taken, Outcome]] = ReorderBuffer(_OPEN_PER_WORKER * workers)
        self._sent: dict[str, tuple[Support, int]] = {}  # camera -> the support the workers hold, its version
        self._support_lock = threading.Lock()  # supports sent, and workers replaced, one at a time
        self._start_failure: str | None = None
        self._restarts: deque[float] = deque()
        self._broken: str | None = None  # why the workers cannot go on
        self._closing = threading.Event()  # the collector ends once this is set and nothing is in flight
        self._dispatcher = threading.Thread(target=self._run, name="inference", daemon=True)
        self._collector = threading.Thread(target=self._collect, name="results", daemon=True)

    # -- life ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every worker with the current supports, and wait until all are ready (UserError if one cannot
        start); then start taking frames."""
        self._collector.start()
        self._lanes = [self._make_lane(i, self._results) for i in range(self.workers)]
        for lane in self._lanes:
            try:
                lane.start()
            except Exception as exc:  # e.g. an engine factory that cannot be pickled for a worker process
                raise UserError(f"worker {lane.index} could not start: {first_line(exc)}") from None
        self._sync_supports()
        deadline = time.monotonic() + self.start_timeout_s
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._start_failure is not None or len(self._idle) == self.workers,
                max(deadline - time.monotonic(), 0.0))
            failure = self._start_failure
        if failure or not ready:
            raise UserError(failure or f"the workers were not ready within {self.start_timeout_s:.0f} s")
        log.info("%d workers ready", self.workers)
        self._dispatcher.start()

    def alive(self) -> bool:
        return self._dispatcher.is_alive() and self._collector.is_alive() and self._broken is None

    def _serving(self) -> bool:
        return self._dispatcher.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Take no more frames, hand on the frames in flight (up to `timeout`), then stop the workers."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
        if self._dispatcher.is_alive():
            self._dispatcher.join(max(deadline - time.monotonic(), 0.0))
        with self._cond:
            self._cond.wait_for(lambda: not self._taken or not self._collector.is_alive(),
                                max(deadline - time.monotonic(), 0.0))
            left = sorted(self._taken.items())
            self._taken.clear()
        if left:
            log.warning("%d frame(s) in flight did not finish within %.0f s; leaving them", len(left), timeout)
        for _, taken in left:
            self.metrics.frame(taken.frame.camera, DROP_SHUTDOWN)
            self.slots.task_done()
        self._closing.set()
        for lane in self._lanes:
            lane.request_stop()
        for lane in self._lanes:
            lane.stop(max(deadline - time.monotonic(), 5.0))
        if self._collector.is_alive():
            self._collector.join(5.0)
        self._fail_calls(RuntimeError("the processor is stopping"))

    # -- the dispatcher ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._calls.empty():
                self._between_frames()
                continue
            lane = self._idle_lane(0.05)
            if lane is None:
                continue
            frame = self._take_frame()
            if frame is None:
                self._release(lane)
                continue
            self._observe_capture(frame)
            if self._dropped_while_paused(frame):
                self.slots.task_done()
                self._release(lane)
                continue
            self._dispatch(lane, frame)

    def _idle_lane(self, timeout: float) -> int | None:
        """An idle worker, once one is idle and the reorder buffer has room; None after `timeout`, or at once
        when a call waits (it goes before any later frame) or the worker stops."""
        def ready() -> bool:
            return bool(self._idle and self._reorder.has_room()) or self._interrupted()

        with self._cond:
            if not self._cond.wait_for(ready, timeout) or self._interrupted():
                return None
            return self._idle.popleft()

    def _interrupted(self) -> bool:
        return self._stop.is_set() or not self._calls.empty()

    def _release(self, lane: int) -> None:
        with self._cond:
            self._idle.appendleft(lane)
            self._cond.notify_all()

    def _dispatch(self, lane: int, frame: Frame) -> None:
        camera = frame.camera
        support, version = self._sent.get(camera, (None, 0))
        with self._cond:
            seq = self._reorder.number()
            self._taken[seq] = _Taken(frame, lane, support.support_id if support is not None else "")
            self._busy[lane] = seq
        self._lanes[lane].submit(seq, camera, version, frame.image)

    def _between_frames(self) -> None:
        """Serve the calls once every frame in flight is handed on; send the workers the supports they changed."""
        with self._cond:
            while self._taken and not self._stop.is_set():
                self._cond.wait(0.1)
        if self._stop.is_set():
            return
        self._serve_calls()
        self._sync_supports()

    def _sync_supports(self) -> None:
        """Every camera's support that the workers do not hold yet, with its next version, to every worker."""
        with self._support_lock:
            for camera in self.cameras:
                support = self.pipelines(camera).support
                sent = self._sent.get(camera)
                if support is None or (sent is not None and sent[0] is support):
                    continue
                version = (sent[1] if sent else 0) + 1
                self._sent[camera] = (support, version)
                for lane in self._lanes:
                    lane.send_support(camera, version, support)

    # -- the collector -----------------------------------------------------------------------------------
    def _collect(self) -> None:
        while True:
            try:
                index, kind, payload = self._results.get(timeout=0.1)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            if kind == READY:
                with self._cond:
                    self._idle.append(index)
                    self._cond.notify_all()
            elif kind == OUTCOME:
                self._arrived(index, payload)
            elif kind in (FAILED_START, ENDED):
                self._lane_ended(index, kind, payload)

    def _arrived(self, lane: int, outcome: Outcome, lane_idle: bool = True) -> None:
        with self._cond:
            self._busy.pop(lane, None)
            if lane_idle:
                self._idle.append(lane)
            if outcome.cpu_s:
                self.lane_cpu_s[lane] = outcome.cpu_s
            taken = self._taken.get(outcome.seq)
            due = self._reorder.put(outcome.seq, (taken, outcome)) if taken is not None else []
            self._cond.notify_all()
        for taken, done in due:  # in order: only this thread hands outcomes on
            try:
                if done.error is not None:
                    self._record_failure(taken.frame, done.error, done.detail)
                else:
                    self._publish(taken.frame, done.result, done.support_id)
            except Exception:  # a sink that failed must not stop the results of every later frame
                log.exception("camera %s: handing on frame %d failed", taken.frame.camera, taken.frame.index)
            finally:
                with self._cond:
                    if self._taken.pop(done.seq, None) is not None:
                        self.slots.task_done()
                    self._cond.notify_all()

    def _lane_ended(self, index: int, kind: str, why: str) -> None:
        """A worker that could not start, or ended: its frame in flight fails in its place; it is restarted."""
        with self._cond:
            if self._closing.is_set() or self._stop.is_set() and kind == ENDED:
                return
            if not self._dispatcher.is_alive():  # still starting: a worker that ends now could not start
                self._start_failure = self._start_failure or why
                self._cond.notify_all()
                return
            seq = self._busy.pop(index, None)
            if index in self._idle:
                self._idle.remove(index)
        log.error("%s", why)
        if seq is not None:
            self._arrived(index, Outcome(seq, error=RuntimeError(why)), lane_idle=False)
        self._restart(index)

    def _restart(self, index: int) -> None:
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > _RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) >= _RESTARTS:
            self._broken = f"{len(self._restarts)} workers ended within {_RESTART_WINDOW_S:.0f} s; not restarting"
            log.error("%s", self._broken)
            return
        self._restarts.append(now)
        lane = self._make_lane(index, self._results)
        with self._support_lock:  # it gets what the others hold, and every support sent after
            lane.start()
            for camera, (support, version) in self._sent.items():
                lane.send_support(camera, version, support)
            self._lanes[index] = lane
        log.warning("worker %d restarted", index)
