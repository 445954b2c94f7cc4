"""The processor's life: cameras that all fail, every_frame for live cameras, shutdown, and the publisher
with a real slow subscriber. Engines and sources are the doubles of test_stream_doubles.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from engines.interfaces import EngineSet
from streamer.cli import main
from streamer.errors import UserError
from streamer.sources.base import Frame, SourceState
from streamer.stream.config import StreamConfig
from streamer.stream.metrics import StreamMetrics
from streamer.stream.processor import StreamProcessor
from streamer.stream.publisher import Publisher
from streamer.types import SegmentationResult
from test_stream_doubles import (BlobDecoder, BlobDensity, BlobEncoder, ListSource, LiveSource, blob_engines,
                                 blob_frame, blob_support)
from test_stream_loop import _config, _processor, _wait_for


class BrokenSource(ListSource):
    """A source whose configuration is wrong (an empty folder, say): open() raises UserError."""

    def open(self) -> None:
        raise UserError(f"no images in folder /belt/{self.camera}\n(a second line that must not show)")


class SlowEncoder(BlobEncoder):
    """Takes `seconds` per frame; the support (the first call, at start) is quick."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def encode(self, image_rgb):
        if self.calls:
            time.sleep(self.seconds)
        return super().encode(image_rgb)


def slow_engines(seconds: float) -> EngineSet:
    return EngineSet(SlowEncoder(seconds), BlobDecoder(), BlobDensity(), "test-blobs-slow")


# -- every camera failed on its configuration: exit 2 -----------------------------------------------------

def test_wait_raises_the_first_error_when_every_camera_failed(tmp_path):
    config = _config(tmp_path, [{"uri": "a", "camera_id": "left"}, {"uri": "b", "camera_id": "right"}])
    proc = _processor(config, {"left": lambda: BrokenSource("left", []), "right": lambda: BrokenSource("right", [])})
    proc.start()
    try:
        with pytest.raises(UserError) as caught:
            proc.wait(threading.Event(), poll_s=0.02)
    finally:
        proc.stop()
    assert str(caught.value) == "camera left: no images in folder /belt/left (all 2 cameras failed)"


def test_one_failed_camera_beside_a_finished_one_is_not_a_failed_run(tmp_path):
    config = _config(tmp_path, [{"uri": "a", "camera_id": "bad"}, {"uri": "b", "camera_id": "good"}])
    images = [blob_frame(3, seed=1)]
    proc = _processor(config, {"bad": lambda: BrokenSource("bad", []), "good": lambda: ListSource("good", images)})
    proc.start()
    try:
        why = proc.wait(threading.Event(), poll_s=0.02)
    finally:
        proc.stop()
    assert why == "sources ended" and proc.supervisors["bad"].error


def test_persense_run_exits_2_when_every_source_fails(tmp_path, capsys):
    from streamer.simulator import ConveyorSimulator

    image, mask = ConveyorSimulator(96, 64, 3, 0).support()
    cv2.imwrite(str(tmp_path / "support.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), mask.astype(np.uint8) * 255)
    empty = tmp_path / "no-images"
    empty.mkdir()
    code = main(["run", "--source", str(empty), "--support", str(tmp_path / "support.png"),
                 "--support-mask", str(tmp_path / "mask.png"), "--publish", "tcp://127.0.0.1:*",
                 "--control", "tcp://127.0.0.1:*", "--metrics-port", "0", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("persense run: error: camera cam0: no images") and str(empty) in err[-1]



def test_persense_run_exits_2_when_a_video_file_has_no_decodable_frame(tmp_path, capsys):
    from streamer.simulator import ConveyorSimulator

    image, mask = ConveyorSimulator(96, 64, 3, 0).support()
    cv2.imwrite(str(tmp_path / "support.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), mask.astype(np.uint8) * 255)
    text = tmp_path / "text.png"
    text.write_text("a text file with an image's name\n")
    code = main(["run", "--source", str(text), "--support", str(tmp_path / "support.png"),
                 "--support-mask", str(tmp_path / "mask.png"), "--publish", "tcp://127.0.0.1:*",
                 "--control", "tcp://127.0.0.1:*", "--metrics-port", "0", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, "a run that could not decode one frame must not succeed"
    assert err[-1].startswith("persense run: error: camera cam0: cannot decode") and str(text) in err[-1]


# -- every_frame is for files only ------------------------------------------------------------------------

def test_every_frame_is_ignored_for_a_live_camera_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="streamer.stream.processor")
    config = _config(tmp_path, [{"uri": "a", "camera_id": "live", "every_frame": True},
                                {"uri": "b", "camera_id": "file", "every_frame": True}])
    frames = [blob_frame(4, seed=i) for i in range(3)]
    proc = _processor(config, {"live": lambda: LiveSource("live", frames, fps=100.0),
                               "file": lambda: ListSource("file", frames * 20)}, slow_engines(0.03))
    stale = proc.metrics.frames.labels("live", "dropped_stale")
    proc.start()
    try:
        # Inference is slower than the camera: newest-frame-wins drops the frames it cannot reach in time.
        assert _wait_for(lambda: stale._value.get() >= 3), "a live camera must never wait for inference"
        assert not proc.slots.keeps_every_frame("live")
        assert proc.slots.keeps_every_frame("file")
    finally:
        proc.stop()
    assert proc.metrics.frames.labels("file", "dropped_stale")._value.get() == 0
    warnings = [r.getMessage() for r in caplog.records if "every_frame applies to files" in r.getMessage()]
    assert warnings == ["camera live: every_frame applies to files and folders only; a live camera keeps the "
                        "newest frame"]


# -- shutdown --------------------------------------------------------------------------------------------

class RecordingSupervisor:
    """Stands in for CameraSupervisor: records the order of the processor's calls."""

    def __init__(self, events: list, camera, make, on_frame, on_state, **timing) -> None:
        self.events, self.camera = events, camera
        self.state, self.reconnects, self.error = SourceState.STREAMING, 0, None

    def start(self) -> None:
        pass

    def request_stop(self) -> None:
        self.events.append(("request_stop", self.camera))

    def stop(self, timeout: float) -> None:
        self.events.append(("stop", self.camera, timeout))
        time.sleep(0.05)


def test_shutdown_tells_every_camera_first_then_joins_within_one_deadline(tmp_path):
    events: list = []
    cameras = ["c0", "c1", "c2"]
    config = _config(tmp_path, [{"uri": c, "camera_id": c} for c in cameras])
    proc = StreamProcessor(config, blob_engines(), blob_support(), source_factory=lambda s: (lambda: None),
                           supervisor_factory=lambda *args, **kw: RecordingSupervisor(events, *args, **kw))
    close = proc.slots.close
    proc.slots.close = lambda: (events.append(("close",)), close())[1]
    proc.start()
    proc.stop()
    kinds = [e[0] for e in events]
    assert kinds == ["request_stop"] * 3 + ["close"] + ["stop"] * 3
    timeouts = [e[2] for e in events if e[0] == "stop"]
    assert timeouts[0] <= 2.0 and timeouts[1] < timeouts[0] and timeouts[2] < timeouts[1], "one shared deadline"


def test_every_frame_producers_blocked_on_full_slots_stop_at_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    cameras = ["f0", "f1", "f2"]
    config = _config(tmp_path, [{"uri": c, "camera_id": c, "every_frame": True} for c in cameras])
    frames = [blob_frame(2, seed=i) for i in range(50)]
    # Inference slower than the 2 s shutdown allowance (SAM ViT-H on a CPU): room in a camera's slot
    # comes only every 3 x 1.5 s.
    proc = _processor(config, {c: (lambda c=c: ListSource(c, frames)) for c in cameras}, slow_engines(1.5))
    proc.start()
    try:
        # Two frames wait per camera: each capture thread is blocked in slots.put.
        assert _wait_for(lambda: proc.slots.pending() == 6)
    finally:
        proc.stop()
    assert not any(s.is_alive() for s in proc.supervisors.values())
    assert "still blocked" not in caplog.text
    assert all(s.state == SourceState.STOPPED for s in proc.supervisors.values())


# -- a real slow subscriber: drops are counted, sends never block ----------------------------------------

def test_a_slow_subscriber_overflows_visibly_and_never_blocks_the_publisher():
    metrics = StreamMetrics(["c"])
    ctx = zmq.Context()
    config = StreamConfig().publish.model_copy(update={
        "endpoint": "tcp://127.0.0.1:*", "send_hwm": 4, "queue_size": 1000, "overlay_jpeg": True, "heartbeat_s": 60})
    publisher = Publisher(ctx, config, metrics, lambda: {})
    slow = ctx.socket(zmq.SUB)
    slow.setsockopt(zmq.RCVHWM, 2)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.setsockopt(zmq.LINGER, 0)
    slow.setsockopt(zmq.SUBSCRIBE, b"persense/c/result")
    slow.connect(publisher.endpoint)
    publisher.start()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # ~100 kB JPEG overlays
    n = 200
    try:
        assert _wait_for(lambda: publisher.subscriptions >= 1), "the subscription never reached the publisher"
        for i in range(n):
            assert publisher.submit(Frame(noise, i, time.time(), "c"), SegmentationResult(320, 240, []), "s")
        # The subscriber has read nothing yet, and still every result was handled: no send waited for it.
        assert _wait_for(publisher.idle)
        assert publisher.sent == n
        overflows = metrics.subscriber_overflows.labels("c")._value.get()
        assert metrics.publish_dropped.labels("c")._value.get() == 0, "a slow subscriber costs no one else a result"
        seqs = []
        while slow.poll(500):
            seqs.append(json.loads(slow.recv_multipart()[1])["seq"])
    finally:
        publisher.stop(0.1)
        slow.close()
        ctx.term()
    assert overflows > 0, "the subscriber's full queue must show in persense_publish_subscriber_overflows_total"
    assert 0 < len(seqs) < n, "the slow subscriber lost results of its own"
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_isolated_subscribers_a_slow_one_does_not_cost_a_fast_one_anything():
    metrics = StreamMetrics(["c"])
    ctx = zmq.Context()
    config = StreamConfig().publish.model_copy(update={
        "endpoint": "tcp://127.0.0.1:*", "send_hwm": 20, "queue_size": 1000, "overlay_jpeg": True, "heartbeat_s": 60})
    publisher = Publisher(ctx, config, metrics, lambda: {})
    slow, fast = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    for sock in (slow, fast):
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"persense/c/result")
    slow.setsockopt(zmq.RCVHWM, 2)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.connect(publisher.endpoint)
    fast.connect(publisher.endpoint)
    fast_seqs: list[int] = []
    done = threading.Event()

    def read_fast():  # a subscriber that keeps up: reads as soon as anything arrives
        while not done.is_set() or fast.poll(200):
            if fast.poll(50):
                fast_seqs.append(json.loads(fast.recv_multipart()[1])["seq"])

    reader = threading.Thread(target=read_fast)
    publisher.start()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    n = 200
    try:
        assert _wait_for(lambda: publisher.subscriptions >= 2), "the subscriptions never reached the publisher"
        reader.start()
        for i in range(n):
            assert publisher.submit(Frame(noise, i, time.time(), "c"), SegmentationResult(320, 240, []), "s")
            time.sleep(0.002)
        assert _wait_for(publisher.idle)
        done.set()
        reader.join(10)
        slow_count = 0
        while slow.poll(300):
            slow.recv_multipart()
            slow_count += 1
    finally:
        publisher.stop(0.1)
        slow.close()
        fast.close()
        ctx.term()
    assert fast_seqs == list(range(n)), "a subscriber that keeps up misses nothing"
    assert slow_count < n, "the slow subscriber lost its own messages"
