"""Encode-ahead (`stream.encode_ahead`): frame t+1 is encoded while frame t is segmented; nothing lost or reordered.

Overlap is shown by a handshake, not by timing: the density stage of frame t waits for the encoder to start
frame t+1, which happens only where the two run concurrently. With encode-ahead off the same probe sees no overlap.
"""

from __future__ import annotations

import threading

import pytest

from engines.interfaces import EngineSet
from streamer.stream import ahead
from streamer.stream.ahead import encode_ahead_enabled
from test_stream_doubles import BlobDecoder, BlobDensity, BlobEncoder, ListSource, blob_frame
from test_stream_loop import _config, _processor, _wait_for

COUNTS = [4, 7, 2, 9, 5]


class OverlapProbe:
    """Shared by the probe encoder and density: which frame each embedding is, and how far encoding got."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.started = 0  # encodes begun (the support's first)
        self.frame_of: dict[int, int] = {}
        self.overlapped: dict[int, bool] = {}
        self.cond = threading.Condition()


class ProbeEncoder(BlobEncoder):
    def __init__(self, probe: OverlapProbe, fail_on: int | None = None) -> None:
        super().__init__()
        self.probe, self.fail_on = probe, fail_on
        self.threads: set[str] = set()

    def encode(self, image_rgb):
        with self.probe.cond:
            self.probe.started += 1
            frame = self.probe.started - 2  # the first encode is the support's
            self.probe.cond.notify_all()
        if frame >= 0:
            self.threads.add(threading.current_thread().name)
        if frame == self.fail_on:
            raise RuntimeError("sensor glitch")
        embedding = super().encode(image_rgb)
        with self.probe.cond:
            self.probe.frame_of[id(embedding.features)] = frame
        return embedding


class ProbeDensity(BlobDensity):
    def __init__(self, probe: OverlapProbe, frames: int) -> None:
        self.probe, self.frames = probe, frames

    def density(self, image_rgb, embedding, exemplar_boxes):
        frame = self.probe.frame_of[id(embedding.features)]
        if frame + 1 < self.frames and frame not in self.probe.overlapped:
            with self.probe.cond:
                # Encoding of frame t+1 has begun once `started` counts the support, frames 0..t and t+1.
                self.probe.overlapped[frame] = self.probe.cond.wait_for(
                    lambda: self.probe.started >= frame + 3, self.probe.wait_s)
        return super().density(image_rgb, embedding, exemplar_boxes)


def _run(tmp_path, encode_ahead: bool, wait_s: float, fail_on: int | None = None):
    probe = OverlapProbe(wait_s)
    encoder = ProbeEncoder(probe, fail_on)
    engines = EngineSet(encoder, BlobDecoder(), ProbeDensity(probe, len(COUNTS)), "test-probe")
    config = _config(tmp_path, [{"uri": "test", "camera_id": "line1", "every_frame": True}])
    config.stream.encode_ahead = encode_ahead
    config.stream.workers = 1  # encoding ahead is the one inference thread's (several workers segment side by side)
    images = [blob_frame(n, seed=i) for i, n in enumerate(COUNTS)]
    proc = _processor(config, {"line1": lambda: ListSource("line1", images, COUNTS)}, engines)
    proc.start()
    try:
        assert _wait_for(proc.finished, 30.0)
    finally:
        proc.stop()
    return probe, encoder, proc


def test_the_next_frame_is_encoded_while_this_one_is_segmented(tmp_path):
    probe, encoder, proc = _run(tmp_path, encode_ahead=True, wait_s=10.0)
    assert probe.overlapped == {i: True for i in range(len(COUNTS) - 1)}
    assert encoder.threads == {"encoder"}
    assert proc.worker.processed == {"line1": len(COUNTS)} and proc.worker.failed == {}


def test_without_encode_ahead_the_probe_sees_no_overlap(tmp_path):
    probe, encoder, proc = _run(tmp_path, encode_ahead=False, wait_s=0.2)
    assert probe.overlapped == {i: False for i in range(len(COUNTS) - 1)}
    assert encoder.threads == {"inference"}
    assert proc.worker.processed == {"line1": len(COUNTS)}


@pytest.mark.parametrize("encode_ahead", [True, False])
def test_a_frame_whose_encoding_fails_is_counted_and_the_others_processed(tmp_path, encode_ahead):
    _, _, proc = _run(tmp_path, encode_ahead=encode_ahead, wait_s=0.2, fail_on=2)
    assert proc.worker.failed == {"line1": 1} and proc.worker.processed == {"line1": len(COUNTS) - 1}
    text = proc.metrics.exposition().decode()
    assert 'persense_frames_total{camera="line1",outcome="failed"} 1.0' in text
    assert 'persense_frames_total{camera="line1",outcome="processed"} 4.0' in text
    # Every published result is its own frame's: the counts follow the frames, the failed one left out.
    assert proc.worker.last_count["line1"] == COUNTS[-1]


def test_auto_setting_follows_the_encoders_device():
    class GpuEncoder(BlobEncoder):
        device = "cuda"

    assert encode_ahead_enabled(None, BlobEncoder()) is False  # no device: a CPU encoder
    assert encode_ahead_enabled(None, GpuEncoder()) is True
    assert encode_ahead_enabled(True, BlobEncoder()) is True and encode_ahead_enabled(False, GpuEncoder()) is False


def test_next_encoding_starts_just_in_time(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(ahead.time, "monotonic", lambda: clock[0])
    schedule = ahead.JustInTime(smoothing=0.5, margin=1.0)
    assert schedule.delay_s() == 0.0  # nothing known yet: encode now
    schedule.encoded(0.010)
    schedule.segment_started()
    clock[0] += 0.040
    schedule.segment_ended()  # rest: 40 ms
    assert schedule.delay_s() == 0.0  # the segmenter is idle
    schedule.segment_started()
    assert schedule.delay_s() == pytest.approx(0.030)  # 40 ms of rest - 10 ms of encoding
    clock[0] += 0.025
    assert schedule.delay_s() == pytest.approx(0.005)
    schedule.encoded(0.050)  # encoding became slower than the rest (average 30 ms): start at once
    assert schedule.delay_s() == 0.0
    clock[0] += 0.100
    schedule.segment_ended()  # a slow frame (125 ms) moves the average halfway: 82.5 ms
    schedule.segment_started()
    assert schedule.delay_s() == pytest.approx(0.0825 - 0.030)


def test_the_encoder_waits_while_an_encoded_frame_is_held():
    """At most two frames in flight: the next encoding is not due while the hand-off holds one, and its delay
    counts from the segment that takes it (taking and starting the segment are one step)."""
    schedule = ahead.JustInTime(margin=1.0)
    stop = threading.Event()
    assert schedule.hand_over("frame 1", lambda: True)
    due = threading.Event()
    waiter = threading.Thread(target=lambda: (schedule.wait_until_due(stop), due.set()), daemon=True)
    waiter.start()
    assert not due.wait(0.3)  # frame 1 is still held
    assert schedule.take(1.0) == "frame 1"
    assert due.wait(5.0)  # nothing known of the durations yet: due as soon as frame 1 is taken
    assert schedule.take(0.05) is None and not schedule.holding()
    # A hand-off whose receiver is gone is refused rather than waited on for ever.
    assert schedule.hand_over("frame 2", lambda: True)
    assert schedule.hand_over("frame 3", lambda: False) is False
    assert schedule.drain() == "frame 2" and schedule.drain() is None
    stop.set()
