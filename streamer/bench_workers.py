"""`persense bench --workers N --cameras M`: the stream's own worker (streamer.stream.worker_choice: one inference
thread, or N workers with results in order) on M simulated cameras, every frame kept, without the network.

Per result handed on: tracking and counting (a counting line, as streamer.stream.tally does) and the message up to
the socket (streamer.stream.messages.result_message), in order, as `persense run` does. Measured after the warm-up:
frames per second, latency from the frame's taking (by the worker) to its result handed on, the CPU used (this
process and the worker processes together), and a digest of every result, in the order handed on, so that runs
with different workers can be compared result by result.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engines.interfaces import EngineSet
from streamer.config import Config
from streamer.errors import UserError
from streamer.gates import build_gate
from streamer.persense.pipeline import PerSense
from streamer.sources.base import Frame, FrameSource, SourceEnded, SourceError
from streamer.stream.config import SourceConfig
from streamer.stream.messages import PartOptions, result_message
from streamer.stream.metrics import StreamMetrics
from streamer.stream.slots import FrameSlots
from streamer.stream.tally import CameraTally
from streamer.stream.tally_config import CountLineConfig, TallyConfig
from streamer.stream.worker_choice import build_worker
from streamer.types import SegmentationResult


def result_digest(result: SegmentationResult) -> str:
    """A digest of everything a result says (not its timings): equal digests, bit-identical results."""
    digest = hashlib.sha1()
    digest.update(np.asarray([result.width, result.height, result.density_count, result.match_quality]).tobytes())
    digest.update(np.ascontiguousarray(result.points, np.float32).tobytes())
    digest.update(repr((result.label, result.reason)).encode())
    for inst in result.instances:
        digest.update(np.asarray([inst.id, inst.score, *inst.bbox, *inst.point], np.float64).tobytes())
        digest.update(np.packbits(inst.mask).tobytes())
    return digest.hexdigest()


@dataclass
class StreamBenchReport:
    workers: int
    cameras: int
    fps: float
    latency_ms: list[float]
    cpu_cores: float  # CPU seconds (this process and its workers) per second of the measured run
    digests: list[tuple[str, int, str]] = field(default_factory=list)  # (camera, frame index, digest) of every
    # result, the warm-up's too, in the order handed on
    failed: int = 0
    load_before: float = 0.0  # 1-minute load average when the run started (other processes on the machine)
    cpu_workers_share: float = 0.0  # the worker processes' part of the CPU (0: one process does everything)
    segment_ms: list[float] = field(default_factory=list)  # per measured frame: its pipeline stages' time (the
    # rest of its latency is the way to and from a worker, the wait for earlier frames, tracking and the message)

    def summary(self) -> dict:
        lat = np.asarray(self.latency_ms)
        return {
            "workers": self.workers, "cameras": self.cameras, "frames": len(self.latency_ms),
            "fps": round(self.fps, 2),
            "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p95": round(float(np.percentile(lat, 95)), 1)},
            "segment_ms_p50": round(float(np.percentile(self.segment_ms, 50)), 1) if self.segment_ms else None,
            "beside_segment_ms_p50": round(float(np.percentile(lat - np.asarray(self.segment_ms), 50)), 1)
            if len(self.segment_ms) == len(lat) and len(lat) else None,
            "cpu_cores": round(self.cpu_cores, 2),
            "cpu_ms_per_frame": round(1e3 * self.cpu_cores / self.fps, 1) if self.fps > 0 else None,
            "cpu_workers_share": round(self.cpu_workers_share, 3),
            "failed": self.failed, "load_before": round(self.load_before, 2),
        }


class _TimedSlots(FrameSlots):
    """FrameSlots that note when each frame is taken (perf_counter s), for the latency from there."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.taken_at: dict[int, float] = {}

    def take(self, timeout: float) -> Frame | None:
        frame = super().take(timeout)
        if frame is not None:
            self.taken_at[id(frame)] = time.perf_counter()
        return frame


class _BenchSink:
    """Tracks and counts, builds the message, and notes the figures of every result handed on."""

    def __init__(self, cameras: list[str], slots: _TimedSlots, warmup: int, total: int):
        line = TallyConfig(lines=[CountLineConfig(points=(0.5, 0.0, 0.5, 1.0))])
        self.tallies = {camera: CameraTally(line, camera) for camera in cameras}
        self.slots = slots
        self.warmup, self.total = warmup, total
        self.handed_on = 0
        self.latency_ms: list[float] = []
        self.segment_ms: list[float] = []
        self.digests: list[tuple[str, int, str]] = []
        self.warm_at: tuple[float, float] | None = None  # (perf_counter, this process's CPU s) at the warm-up's end
        self.cpu_at_warm: Callable[[], float] = lambda: 0.0  # the worker processes' CPU s at the warm-up's end
        self.workers_cpu_warm = 0.0
        self.done_at = 0.0  # when the last result was handed on

    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool:
        self.tallies[frame.camera].observe(frame, result)
        result_message(frame, result, self.handed_on, support_id, PartOptions())
        now = time.perf_counter()
        self.handed_on += 1
        if self.handed_on == self.warmup:
            self.warm_at = (now, time.process_time())
            self.workers_cpu_warm = self.cpu_at_warm()
        elif self.handed_on > self.warmup:
            self.latency_ms.append((now - self.slots.taken_at.pop(id(frame))) * 1e3)
            self.segment_ms.append(sum(result.timings_ms.values()))
        # Every result, the warm-up's too: which frames of each camera the warm-up took depends on timing.
        self.digests.append((frame.camera, int(frame.index), result_digest(result)))
        self.slots.taken_at.pop(id(frame), None)
        self.done_at = now
        return True


class _Pipelines:
    """The stand-in of streamer.stream.products.CameraProducts that build_worker reads."""

    def __init__(self, engines: EngineSet, pipelines: dict[str, PerSense]):
        self.engines = engines
        self.pipelines = pipelines
        self.cameras = list(pipelines)

    def pipeline(self, camera: str) -> PerSense:
        return self.pipelines[camera]


def _capture(source: FrameSource, slots: FrameSlots, count: int, errors: list[str]) -> None:
    """Read `count` frames into the slots (every frame is kept: this waits while the camera's slot is full)."""
    try:
        for _ in range(count):
            frame = source.read(timeout=5.0)
            if frame is None or not slots.put(frame):
                break
    except SourceEnded:
        errors.append(f"{source.camera_id}: the source ended early")
    except SourceError as exc:
        errors.append(f"{source.camera_id}: the source failed: {exc}")


def run_stream_benchmark(config: Config, engines: EngineSet, engine_factory: Callable[[], EngineSet],
                         sources: list[FrameSource], supports: list[tuple[np.ndarray, np.ndarray]], frames: int,
                         warmup: int, workers: int, timeout_s: float = 600.0) -> StreamBenchReport:
    """Run `warmup + frames` frames of every source through the stream's worker for `workers` (1: the inference
    thread, as `persense run` with stream.workers: 1); measure the last `frames` of each camera, all together.

    engines: the stream's own (supports are learnt with them); engine_factory: picklable, builds each worker's.
    """
    cameras = [source.camera_id for source in sources]
    stream = config.stream.model_copy(update={
        "workers": workers, "sources": [SourceConfig(uri="bench", camera_id=c) for c in cameras]})
    config = config.model_copy(update={"stream": stream})
    pipelines = {}
    for camera, support in zip(cameras, supports):
        pipelines[camera] = PerSense(engines, config.pipeline, build_gate(config.gate))
        pipelines[camera].set_support(*support)
    slots = _TimedSlots(cameras, every_frame=set(cameras))
    sink = _BenchSink(cameras, slots, warmup * len(cameras), (warmup + frames) * len(cameras))
    worker = build_worker(config, _Pipelines(engines, pipelines), slots, sink, StreamMetrics(cameras),
                          engine_factory)
    sink.cpu_at_warm = lambda: sum(getattr(worker, "lane_cpu_s", {}).values())
    load_before = os.getloadavg()[0]
    worker.start()
    errors: list[str] = []
    readers = [threading.Thread(target=_capture, args=(source, slots, warmup + frames, errors), daemon=True)
               for source in sources]
    try:
        for source in sources:
            source.open()
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout_s
        # A failed frame is counted by the worker, not handed to the sink: both together make the total.
        while not (finished := sink.handed_on + sum(worker.failed.values()) >= sink.total):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        slots.close()
        for reader in readers:
            if reader.ident is not None:
                reader.join(10.0)
        cpu_end = time.process_time()
        workers_cpu_end = sink.cpu_at_warm()
        worker.stop()
        for source in sources:
            source.close()
    if errors:
        raise UserError(errors[0])
    if not finished or sink.warm_at is None:
        raise UserError(f"the run did not finish within {timeout_s:.0f} s ({sink.handed_on} results)")
    wall = sink.done_at - sink.warm_at[0]
    cpu_workers = workers_cpu_end - sink.workers_cpu_warm
    cpu = (cpu_end - sink.warm_at[1]) + cpu_workers
    measured = len(sink.latency_ms)
    return StreamBenchReport(workers, len(cameras), measured / wall if wall > 0 else 0.0, sink.latency_ms,
                             cpu / wall if wall > 0 else 0.0, sink.digests, sum(worker.failed.values()), load_before,
                             cpu_workers / cpu if cpu > 0 else 0.0, sink.segment_ms)
