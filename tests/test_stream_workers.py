"""Several frames in flight (`stream.workers`): results in capture order, a failed frame in its place, a support
change that waits for the frames in flight and never mixes into one, and the workers' processes end to end.

The engines are the blob doubles of test_stream_doubles; some are wrapped here to hold a frame in its worker until
the test lets it go, to fail on a marked frame, or to take a while (so that frames overlap).
"""

from __future__ import annotations

import queue
import threading
import time
from functools import partial

import numpy as np
import pytest

from engines.interfaces import EngineSet
from streamer.config import PipelineConfig
from streamer.errors import UserError
from streamer.persense.pipeline import PerSense
from streamer.product_config import GateConfig
from streamer.sources.base import Frame
from streamer.stream.lanes import ProcessLane, Replica, ReplicaRecipe, ThreadLane
from streamer.stream.metrics import StreamMetrics
from streamer.stream.parallel import ParallelWorker
from streamer.stream.reorder import ReorderBuffer
from streamer.stream.slots import FrameSlots
from streamer.stream.worker_choice import resolved_workers
from streamer.subscriber import ResultMessage, StatusMessage, Subscriber
from test_stream_doubles import BlobDecoder, BlobDensity, BlobEncoder, ListSource, blob_frame, blob_support
from test_stream_loop import _config, _processor, _wait_for

MARK = 7  # a frame whose pixel (0, 0) has this green value fails in the encoder


def _marked(image: np.ndarray) -> np.ndarray:
    image = image.copy()
    image[0, 0, 1] = MARK
    return image


class MarkFailingEncoder(BlobEncoder):
    """Fails on a marked frame; takes `delay_s` on every frame (so that frames overlap in the workers)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s

    def encode(self, image_rgb):
        time.sleep(self.delay_s)
        if image_rgb[0, 0, 1] == MARK:
            raise ValueError("a marked frame")
        return super().encode(image_rgb)


class HoldingEncoder(MarkFailingEncoder):
    """Tells `entered` the index of every frame it starts (see _indexed), and holds those in `holds` until their
    event is set."""

    def __init__(self, holds: dict[int, threading.Event], entered: queue.SimpleQueue) -> None:
        super().__init__()
        self.holds, self.entered = holds, entered

    def encode(self, image_rgb):
        index = int(image_rgb[0, 0, 0]) - 1
        if index >= 0:
            self.entered.put(index)
        if index in self.holds:
            assert self.holds[index].wait(10), "the test never let the frame go"
        return super().encode(image_rgb)


def _indexed(i: int, n_blobs: int = 3) -> np.ndarray:
    """A blob frame that carries its index + 1 in pixel (0, 0)'s red value (too dark to be a blob; 0: none)."""
    image = blob_frame(n_blobs, seed=i)
    image[0, 0, 0] = i + 1
    return image


def _entered(entered: queue.SimpleQueue, n: int) -> set[int]:
    return {entered.get(timeout=10) for _ in range(n)}


class _Log:
    """The sink, recording in one list what the worker hands on: results and failures, in the order handed on."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def submit(self, frame, result, support_id, wait=False) -> bool:
        with self.lock:
            self.events.append(("result", frame.index, support_id))
        return True

    def note(self, *event) -> None:
        with self.lock:
            self.events.append(event)


def _thread_worker(engines, frames: int, workers: int = 2):
    """A ParallelWorker with thread workers over `engines` (built fresh per worker) on camera c, the master
    pipeline with blob_support, its slots keeping every frame, and the log."""
    slots = FrameSlots(["c"], every_frame={"c"}, depth=frames)
    master = PerSense(engines(), PipelineConfig())
    master.set_support(*blob_support())
    log = _Log()
    recipe = ReplicaRecipe(engines, PipelineConfig(), {"c": GateConfig()})
    worker = ParallelWorker(lambda camera: master, ["c"], slots, log, StreamMetrics(["c"]),
                            lambda index, results: ThreadLane(index, recipe, results), workers)
    record = worker._record_failure

    def failed(frame, exc, detail=""):  # failures are counted and logged; here they also go to the log, in place
        log.note("failed", frame.index)
        record(frame, exc, detail)

    worker._record_failure = failed
    return worker, slots, master, log


def _put_all(slots: FrameSlots, images: list[np.ndarray]) -> None:
    for i, image in enumerate(images):
        slots.put(Frame(image, i, time.time(), "c"))


def test_the_reorder_buffer_hands_on_in_order_and_is_bounded():
    buffer = ReorderBuffer(3)
    seqs = [buffer.number() for _ in range(3)]
    assert seqs == [0, 1, 2] and not buffer.has_room()
    with pytest.raises(ValueError):
        buffer.number()
    assert buffer.put(2, "c") == [] and buffer.put(1, "b") == []
    assert buffer.put(0, "a") == ["a", "b", "c"] and buffer.has_room() and buffer.open() == 0
    with pytest.raises(ValueError):
        buffer.put(0, "again")  # handed on already
    with pytest.raises(ValueError):
        buffer.put(5, "never numbered")


def test_a_frame_stamped_with_another_support_version_fails_instead_of_mixing():
    engines = EngineSet(BlobEncoder(), BlobDecoder(), BlobDensity(), "test-blobs")
    master = PerSense(engines, PipelineConfig())
    support = master.set_support(*blob_support())
    replica = Replica({"c": PerSense(engines, PipelineConfig())})
    replica.adopt("c", 1, support)
    good = replica.segment(0, "c", 1, blob_frame(3))
    assert good.error is None and good.result.count == 3 and good.support_id == support.support_id
    stale = replica.segment(1, "c", 2, blob_frame(3))
    assert stale.result is None and "support version 2" in str(stale.error)


def test_frames_that_finish_out_of_order_are_handed_on_in_order_with_the_failure_in_its_place():
    holds = {0: threading.Event()}
    entered: queue.SimpleQueue = queue.SimpleQueue()
    engines = lambda: EngineSet(HoldingEncoder(holds, entered), BlobDecoder(), BlobDensity(), "test-blobs")  # noqa
    images = [_indexed(i) for i in range(8)]
    images[3] = _marked(images[3])
    worker, slots, _, log = _thread_worker(engines, len(images))
    worker.start()
    try:
        _put_all(slots, images)
        # Frame 0 is held in one worker while the other segments 1, 2 and fails 3 (four frames open: the most
        # for two workers): all wait for frame 0.
        assert _entered(entered, 4) == {0, 1, 2, 3}
        assert log.events == [] and worker.processed == {} and worker.failed == {}
        holds[0].set()
        assert _wait_for(lambda: slots.idle())
    finally:
        worker.stop()
    assert [event[:2] for event in log.events] == [
        ("result", 0), ("result", 1), ("result", 2), ("failed", 3),
        ("result", 4), ("result", 5), ("result", 6), ("result", 7)]
    assert worker.processed == {"c": 7} and worker.failed == {"c": 1}


def test_a_support_change_waits_for_the_frames_in_flight_and_applies_to_every_later_frame():
    holds = {0: threading.Event(), 1: threading.Event()}
    entered: queue.SimpleQueue = queue.SimpleQueue()
    engines = lambda: EngineSet(HoldingEncoder(holds, entered), BlobDecoder(), BlobDensity(), "test-blobs")  # noqa
    images = [_indexed(i) for i in range(6)]
    worker, slots, master, log = _thread_worker(engines, len(images))
    old = master.support.support_id
    new_image = blob_frame(1, seed=11)
    worker.start()
    try:
        _put_all(slots, images)
        assert _entered(entered, 2) == {0, 1}  # both workers hold a frame

        def change():
            support = master.set_support(new_image, new_image[:, :, 0] > 100)
            log.note("support", support.support_id)
            return support.support_id

        answer: list[str] = []
        caller = threading.Thread(target=lambda: answer.append(worker.call(change, timeout=20)))
        caller.start()
        assert _wait_for(lambda: worker._calls.qsize() == 1)  # asked while frames 0 and 1 are in flight
        for hold in holds.values():
            hold.set()
        caller.join(20)
        assert _wait_for(lambda: slots.idle())
    finally:
        worker.stop()
    new = answer[0]
    assert new != old
    assert log.events == [("result", 0, old), ("result", 1, old), ("support", new),
                          ("result", 2, new), ("result", 3, new), ("result", 4, new), ("result", 5, new)]


def test_worker_processes_publish_in_order_with_a_failure_and_a_support_change_mid_stream(tmp_path):
    counts = [3, 5, 2, 6, 4, 1, 7, 3, 2, 5, 4, 6]
    images = [blob_frame(n, seed=i) for i, n in enumerate(counts)]
    images[4] = _marked(images[4])
    config = _config(tmp_path, [{"uri": "test", "camera_id": "line1", "every_frame": True}])
    config.stream.workers = 2
    engines = EngineSet(MarkFailingEncoder(delay_s=0.05), BlobDecoder(), BlobDensity(), "test-blobs")
    go = threading.Event()

    def source():
        go.wait(10)
        return ListSource("line1", images, counts)

    proc = _processor(config, {"line1": source}, engines)
    proc.start()
    old = proc.products.support_id("line1")
    new_image = blob_frame(1, seed=11)
    try:
        assert len(proc.worker._lanes) == 2 and all(lane.alive() for lane in proc.worker._lanes)
        with Subscriber(proc.publisher.endpoint, status=True) as sub:
            assert _wait_for(lambda: isinstance(sub.receive(0.5), StatusMessage), 30), "no heartbeat arrived"
            go.set()
            got = []

            def results() -> list[ResultMessage]:
                return [m for m in got if isinstance(m, ResultMessage)]

            assert _wait_for(lambda: got.append(sub.receive(0.5)) or len(results()) >= 3, 30)
            new = proc.replace_support(new_image, new_image[:, :, 0] > 100).support_id
            assert _wait_for(lambda: got.append(sub.receive(0.5)) or len(results()) >= len(images) - 1, 30)
    finally:
        proc.stop()
    headers = [m.header for m in results()]
    indices = [h["frame_index"] for h in headers]
    assert indices == [i for i in range(len(images)) if i != 4], "every frame in capture order, but the failed one"
    assert proc.worker.failed == {"line1": 1} and proc.worker.processed == {"line1": len(images) - 1}
    ids = [h["support_id"] for h in headers]
    switch = ids.index(new)
    assert switch >= 3 and ids == [old] * switch + [new] * (len(ids) - switch)
    for h in headers[:switch]:
        assert h["count"] == counts[h["frame_index"]]  # blob engines count every blob under either support


def test_workers_default_to_the_cores_on_a_cpu_encoder_and_to_one_on_a_gpu():
    class Gpu:
        device = "cuda"

    assert resolved_workers(3, Gpu()) == 3
    assert resolved_workers(None, Gpu()) == 1
    assert 1 <= resolved_workers(None, BlobEncoder()) <= 32


class BatchingEncoder(MarkFailingEncoder):
    """Encodes a batch in one call (noting its size); a batch with a marked frame fails as a whole."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = sizes

    def encode_batch(self, images):
        self.sizes.append(len(images))
        if any(image[0, 0, 1] == MARK for image in images):
            raise ValueError("a marked frame in the batch")
        return [BlobEncoder.encode(self, image) for image in images]


def test_frames_of_several_cameras_are_encoded_together_and_a_failing_one_fails_alone(tmp_path):
    cameras, frames = ["a", "b", "c"], 5
    counts = {camera: [(2 + i + k) % 7 + 1 for i in range(frames)] for k, camera in enumerate(cameras)}
    images = {camera: [blob_frame(n, seed=i) for i, n in enumerate(counts[camera])] for camera in cameras}
    images["b"][2] = _marked(images["b"][2])
    config = _config(tmp_path, [{"uri": "test", "camera_id": camera, "every_frame": True} for camera in cameras])
    config.stream.workers, config.stream.batch_frames, config.stream.batch_wait_ms = 1, 3, 200.0
    sizes: list[int] = []
    engines = EngineSet(BatchingEncoder(sizes), BlobDecoder(), BlobDensity(), "test-blobs")
    go = threading.Event()

    def source(camera):
        go.wait(10)
        return ListSource(camera, images[camera], counts[camera])

    proc = _processor(config, {camera: partial(source, camera) for camera in cameras}, engines)
    proc.start()
    try:
        with Subscriber(proc.publisher.endpoint, status=True) as sub:
            assert _wait_for(lambda: isinstance(sub.receive(0.5), StatusMessage), 30), "no heartbeat arrived"
            go.set()
            got = []
            expected = len(cameras) * frames - 1
            assert _wait_for(lambda: got.append(sub.receive(0.5)) or
                             sum(isinstance(m, ResultMessage) for m in got) >= expected, 30)
    finally:
        proc.stop()
    assert max(sizes) > 1, "frames of several cameras went through one encoder call"
    assert proc.worker.failed == {"b": 1}
    assert proc.worker.processed == {"a": frames, "b": frames - 1, "c": frames}
    for camera in cameras:
        headers = [m.header for m in got if isinstance(m, ResultMessage) and m.header["camera"] == camera]
        indices = [h["frame_index"] for h in headers]
        assert indices == [i for i in range(frames) if (camera, i) != ("b", 2)]
        assert [h["count"] for h in headers] == [counts[camera][i] for i in indices]


class ExitingEncoder(BlobEncoder):
    """Ends its worker process on a marked frame, as a crash in native code would."""

    def encode(self, image_rgb):
        if image_rgb[0, 0, 1] == MARK:
            import os

            os._exit(3)
        return super().encode(image_rgb)


def test_a_worker_process_that_dies_fails_its_frame_in_place_and_is_restarted(tmp_path):
    counts = [3, 5, 2, 6, 4, 1, 7, 3]
    images = [blob_frame(n, seed=i) for i, n in enumerate(counts)]
    images[2] = _marked(images[2])
    config = _config(tmp_path, [{"uri": "test", "camera_id": "line1", "every_frame": True}])
    config.stream.workers = 2
    engines = EngineSet(ExitingEncoder(), BlobDecoder(), BlobDensity(), "test-blobs")
    proc = _processor(config, {"line1": lambda: ListSource("line1", images, counts)}, engines)
    proc.start()
    try:
        assert _wait_for(proc.finished, 60)
        assert proc.worker.alive() and all(lane.alive() for lane in proc.worker._lanes)  # the new one too
    finally:
        proc.stop()
    assert proc.worker.failed == {"line1": 1} and proc.worker.processed == {"line1": len(images) - 1}
    assert proc.worker.last_count["line1"] == counts[-1]


def _start_fails(engines, lane_class, match: str) -> None:
    """Workers of `lane_class` whose engines come from `engines`: their start raises UserError matching `match`."""
    recipe = ReplicaRecipe(engines, PipelineConfig(), {"c": GateConfig()})
    no_support = PerSense(EngineSet(BlobEncoder(), BlobDecoder(), BlobDensity(), "test-blobs"))
    worker = ParallelWorker(lambda camera: no_support, ["c"], FrameSlots(["c"]), _Log(), StreamMetrics(["c"]),
                            lambda index, results: lane_class(index, recipe, results), 2)
    try:
        with pytest.raises(UserError, match=match):
            worker.start()
    finally:
        worker.stop(5)


def test_workers_that_cannot_start_fail_the_start_in_one_line():
    def broken():
        raise RuntimeError("no such model")

    _start_fails(broken, ThreadLane, "could not start: no such model")


def test_run_takes_the_workers_from_the_flag_over_the_file_and_bounds_them(tmp_path):
    from streamer.cli import build_parser
    from streamer.cli.run import apply_flags
    from streamer.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("stream:\n  workers: 3\n")

    def workers(*argv):
        return apply_flags(load_config(path), build_parser().parse_args(["run", *argv])).stream.workers

    assert workers() == 3 and workers("--workers", "2") == 2
    for bad in ("0", "33"):
        with pytest.raises(UserError, match="stream.workers"):
            workers("--workers", bad)


def test_an_engine_factory_a_worker_process_cannot_take_fails_the_start_in_one_line():
    _start_fails(lambda: None, ProcessLane, "worker 0 could not start")  # a lambda cannot be pickled
