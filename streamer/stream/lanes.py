"""The stream's workers (`stream.workers`): copies of every camera's pipeline, each segmenting one frame at a time,
in a process of its own (frames reach it through shared memory) or, with `stream.worker_threads`, in a thread.

Processes because the default engines hold Python's lock for most of a frame: two pipelines in two threads of one
process segmented 0.8-1.16 times the frames of one (docs/performance.md, Workers), two processes twice as many.

A worker gets its frames, and the supports to segment them with, through one ordered channel: a support change
sent before a frame is in force for it, and one sent after is not. Each frame carries the version of its camera's
support it was taken under; a worker holding another version fails the frame rather than segment it with the
wrong support.
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from logging.handlers import QueueHandler
from multiprocessing import shared_memory
from typing import Callable

import numpy as np

from engines.interfaces import EngineSet
from streamer.config import GateConfig, PipelineConfig
from streamer.errors import UserError, first_line
from streamer.persense.pipeline import PerSense, Support
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)

# Messages from a worker, as (worker index, kind, payload) on the pool's results queue: ready to segment, a
# frame's Outcome, could not start (why), ended (why).
READY, OUTCOME, FAILED_START, ENDED = "ready", "outcome", "failed-start", "ended"
_REPLY_PIPE_BYTES = 1 << 20  # a reply pipe's capacity: several 60-object results (about 140 kB each)


class EngineCopy:
    """A zero-argument engine factory that unpickles a copy of engines pickled once (picklable itself)."""

    def __init__(self, engines: EngineSet):
        try:
            self.blob = pickle.dumps(engines)
        except Exception as exc:  # an engine holding a native session, a lock, a file
            raise UserError(f"stream.workers above 1 copies the engines into every worker, and {engines.name} "
                            f"cannot be copied ({first_line(exc)[:120]}): set stream.workers: 1") from None

    def __call__(self) -> EngineSet:
        return pickle.loads(self.blob)


@dataclass(frozen=True)
class ReplicaRecipe:
    """What a worker builds its pipelines from; picklable (it is sent to worker processes).

    engines: a picklable zero-argument callable -> EngineSet (EngineCopy, or functools.partial(build_engines, ...)).
    pipeline: the PerSense parameters; gates: camera id -> its gate's configuration.
    """

    engines: Callable[[], EngineSet]
    pipeline: PipelineConfig
    gates: dict[str, GateConfig]

    def build(self) -> dict[str, PerSense]:
        from streamer.gates import build_gate

        engines = self.engines()
        encoder_lock = threading.Lock()
        built: dict[str, object] = {}  # cameras with the same gate configuration share it, as the stream's own
        pipelines = {}
        for camera, gate_config in self.gates.items():
            key = gate_config.model_dump_json()
            gate = built[key] = built.get(key) or build_gate(gate_config)
            pipelines[camera] = PerSense(engines, self.pipeline, gate, encoder_lock=encoder_lock)
        return pipelines


@dataclass
class Outcome:
    """What a worker made of one frame: its result and the support it was segmented with, or the error."""

    seq: int
    result: SegmentationResult | None = None
    support_id: str = ""
    error: Exception | None = None
    detail: str = ""  # the traceback, where the error was raised in another process
    cpu_s: float = field(default=0.0)  # the worker process's CPU seconds so far (0 for a thread)


class Replica:
    """One worker's pipelines and the support version each camera's holds."""

    def __init__(self, pipelines: dict[str, PerSense]):
        self.pipelines = pipelines
        self.versions: dict[str, int] = {}

    def adopt(self, camera: str, version: int, support: Support) -> None:
        self.pipelines[camera].adopt_support(support)
        self.versions[camera] = version

    def segment(self, seq: int, camera: str, version: int, image: np.ndarray) -> Outcome:
        try:
            held = self.versions.get(camera)
            if version and held != version:  # version 0: the camera had no support (its pipeline says so)
                raise RuntimeError(f"camera {camera}: the frame was taken under support version {version}, "
                                   f"this worker holds {held}")
            pipeline = self.pipelines[camera]
            result = pipeline.segment(image)
            return Outcome(seq, result, pipeline.support.support_id)
        except Exception as exc:  # one bad frame must not end the worker
            return Outcome(seq, error=exc)


# -- a worker in a thread ------------------------------------------------------------------------------------
class ThreadLane:
    """A worker on a thread of this process; `results` gets (index, kind, payload)."""

    def __init__(self, index: int, recipe: ReplicaRecipe, results: queue.SimpleQueue):
        self.index = index
        self._recipe = recipe
        self._results = results
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=f"worker-{index}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send_support(self, camera: str, version: int, support: Support) -> None:
        self._tasks.put(("support", camera, version, support))

    def submit(self, seq: int, camera: str, version: int, image: np.ndarray) -> None:
        self._tasks.put(("frame", seq, camera, version, image))

    def alive(self) -> bool:
        return self._thread.is_alive()

    def request_stop(self) -> None:
        self._tasks.put(("stop",))

    def stop(self, timeout: float) -> None:
        self.request_stop()
        self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            replica = Replica(self._recipe.build())
        except Exception as exc:
            self._results.put((self.index, FAILED_START, f"worker {self.index} could not start: {first_line(exc)}"))
            return
        self._results.put((self.index, READY, None))
        while True:
            message = self._tasks.get()
            if message[0] == "stop":
                return
            if message[0] == "support":
                replica.adopt(*message[1:])
            else:
                self._results.put((self.index, OUTCOME, replica.segment(*message[1:])))


# -- a worker in a process -----------------------------------------------------------------------------------
class ProcessLane:
    """A worker in a process of its own (started with spawn: the stream's process has threads, which fork would
    copy in whatever state they are). The frame goes through a shared memory block of this worker's; the
    worker's log records come back to this process's loggers.

    opencv_threads: OpenCV's threads in the worker (cv2.setNumThreads); None: OpenCV's default (one per core)."""

    def __init__(self, index: int, recipe: ReplicaRecipe, results: queue.SimpleQueue,
                 opencv_threads: int | None = None):
        self.index = index
        self._results = results
        context = multiprocessing.get_context("spawn")
        tasks_out, self._tasks = context.Pipe(duplex=False)
        self._replies, replies_in = context.Pipe(duplex=False)
        _widen_pipe(self._replies.fileno())
        self.process = context.Process(
            target=_lane_main,
            args=(index, recipe, tasks_out, replies_in, logging.getLogger().getEffectiveLevel(), opencv_threads),
            name=f"persense-worker-{index}", daemon=True,
        )
        self._ends = (tasks_out, replies_in)  # the worker's ends, closed here once it has them
        self._block: shared_memory.SharedMemory | None = None
        self._receiver = threading.Thread(target=self._receive, name=f"worker-{index}-results", daemon=True)

    def start(self) -> None:
        self.process.start()
        for end in self._ends:
            end.close()  # so that a worker that dies is seen as the end of its pipe
        self._receiver.start()

    def send_support(self, camera: str, version: int, support: Support) -> None:
        self._send(("support", camera, version, support))

    def submit(self, seq: int, camera: str, version: int, image: np.ndarray) -> None:
        image = np.ascontiguousarray(image)
        if self._block is None or self._block.size < image.nbytes:
            self._replace_block(image.nbytes)
        np.ndarray(image.shape, image.dtype, buffer=self._block.buf)[...] = image
        self._send(("frame", seq, camera, version, (self._block.name, image.shape, image.dtype.str)))

    def _send(self, message: tuple) -> None:
        try:
            self._tasks.send(message)
        except OSError:  # the worker is gone; its end is reported by the receiver
            pass

    def _replace_block(self, nbytes: int) -> None:
        """A block for frames of `nbytes`; the old one is unlinked (the worker maps the new one by its name)."""
        old, self._block = self._block, shared_memory.SharedMemory(create=True, size=max(nbytes, 1))
        if old is not None:
            old.close()
            old.unlink()

    def alive(self) -> bool:
        return self._receiver.is_alive()  # it ends once the worker has (and alone reaps it: one waiter a process)

    def request_stop(self) -> None:
        self._send(("stop",))

    def stop(self, timeout: float) -> None:
        if self.process.pid is None:  # never started
            for end in (*self._ends, self._tasks, self._replies):
                end.close()
            return
        self.request_stop()
        self._receiver.join(timeout)
        if self._receiver.is_alive():
            log.warning("worker %d did not stop within %.0f s; ending it (its threads' stacks follow on stderr)",
                        self.index, timeout)
            try:
                os.kill(self.process.pid, signal.SIGUSR1)  # faulthandler in the worker: where it is stuck
                self._receiver.join(1.0)
                self.process.kill()
            except ProcessLookupError:  # it ended meanwhile
                pass
            self._receiver.join(5.0)
        self._tasks.close()
        if self._block is not None:
            self._block.close()
            self._block.unlink()
            self._block = None

    def _receive(self) -> None:
        while True:
            try:
                kind, payload = self._replies.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:  # a reply that cannot be unpickled here
                log.error("worker %d: unreadable reply: %s", self.index, first_line(exc))
                continue
            if kind == "log":
                logger = logging.getLogger(payload.name)
                if logger.isEnabledFor(payload.levelno):
                    logger.handle(payload)
            else:
                self._results.put((self.index, kind, payload))
        self.process.join()  # where the worker hangs on its way out, `stop` kills it
        self._replies.close()
        self._results.put((self.index, ENDED, f"worker {self.index} ended (exit code {self.process.exitcode})"))


def _widen_pipe(fd: int) -> None:
    """Let a pipe hold a whole result (a 60-object result pickles to about 140 kB; Linux's pipes hold 64 kB): the
    worker then writes it in one go instead of waiting, chunk by chunk, for this process's receiving thread, which
    needs Python's lock for every chunk while the results thread holds it to publish (docs/performance.md, 13).
    Where the system allows less, or is not Linux, the pipe stays as it is."""
    try:
        import fcntl

        with open("/proc/sys/fs/pipe-max-size") as limit:
            most = int(limit.read())
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(_REPLY_PIPE_BYTES, most))
    except (ImportError, AttributeError, OSError, ValueError):
        pass


class _PipeQueue:
    """The queue a QueueHandler writes to: the worker's reply pipe (one writer at a time)."""

    def __init__(self, send: Callable[[tuple], None]):
        self._send = send

    def put_nowait(self, record: logging.LogRecord) -> None:
        self._send(("log", record))


def _picklable(outcome: Outcome) -> Outcome:
    """The outcome, its error replaced by a RuntimeError of its text where the error itself cannot be pickled;
    the traceback goes with it as text (a traceback cannot be pickled)."""
    if outcome.error is None:
        return outcome
    exc = outcome.error
    if not isinstance(exc, UserError):
        outcome.detail = "".join(traceback.format_exception(exc)).rstrip()
    try:
        pickle.dumps(exc)
    except Exception:
        outcome.error = RuntimeError(f"{type(exc).__name__}: {exc}")
    return outcome


def _lane_main(index: int, recipe: ReplicaRecipe, tasks, replies, log_level: int,
               opencv_threads: int | None = None) -> None:
    """A worker process: build the pipelines, then serve supports and frames until told to stop (or until the
    stream's process is gone: its end of the pipe closes)."""
    if opencv_threads is not None:
        import cv2

        cv2.setNumThreads(opencv_threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stream's to handle: it stops its workers
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the stream asks where a stuck worker is
    lock = threading.Lock()

    def send(message: tuple) -> None:
        with lock:
            replies.send(message)

    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(_PipeQueue(send))]
    root.setLevel(log_level)
    try:
        replica = Replica(recipe.build())
    except Exception as exc:
        send((FAILED_START, f"worker {index} could not start: {first_line(exc)}"))
        return
    send((READY, None))
    block: shared_memory.SharedMemory | None = None
    try:
        while True:
            try:
                message = tasks.recv()
            except (EOFError, OSError):
                return
            if message[0] == "stop":
                return
            if message[0] == "support":
                replica.adopt(*message[1:])
                continue
            seq, camera, version, (name, shape, dtype) = message[1:]
            if block is None or block.name != name:
                if block is not None:
                    block.close()
                block = shared_memory.SharedMemory(name=name)
            image = np.ndarray(shape, np.dtype(dtype), buffer=block.buf)
            outcome = replica.segment(seq, camera, version, image)
            del image  # the block may be closed for the next frame's
            outcome.cpu_s = time.process_time()
            try:
                send((OUTCOME, _picklable(outcome)))
            except Exception as exc:  # a result that cannot be pickled: its frame fails, in its place
                send((OUTCOME, Outcome(seq, error=RuntimeError(f"the result cannot be sent: {first_line(exc)}"))))
    finally:
        if block is not None:
            block.close()
