"""The frame loop in-process: slots, the processor with the real supervisor and ZeroMQ, drops, the cache.

The engines and sources are the small doubles of test_stream_doubles (real interface implementations on
blob frames); the end-to-end tests with the real engines and sources are in test_stream_e2e.py.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import zmq

from waiting import wait_until
from streamer.config import Config
from streamer.sources.base import Frame
from streamer.stream.config import StreamConfig
from streamer.stream.metrics import StreamMetrics
from streamer.stream.processor import StreamProcessor
from streamer.stream.publisher import Publisher
from streamer.stream.slots import DROP_SHUTDOWN, DROP_STALE, FrameSlots
from streamer.subscriber import ResultMessage, StatusMessage, Subscriber
from test_stream_doubles import DeadSource, ListSource, LiveSource, blob_engines, blob_frame, blob_support


def _frame(camera: str, index: int) -> Frame:
    return Frame(np.zeros((2, 2, 3), np.uint8), index, time.time(), camera)


def test_slots_newest_wins_and_counts_drops():
    drops = []
    slots = FrameSlots(["a", "b"], on_drop=lambda c, r: drops.append((c, r)))
    for i in range(3):
        slots.put(_frame("a", i))
    slots.put(_frame("b", 0))
    assert drops == [("a", DROP_STALE), ("a", DROP_STALE)]
    first, second = slots.take(0.1), slots.take(0.1)
    assert (first.camera, first.index) == ("a", 2)  # the newest frame, not the oldest
    assert second.camera == "b"  # cameras take turns
    assert slots.take(0.01) is None
    assert not slots.idle()
    slots.task_done(), slots.task_done()
    assert slots.idle()
    slots.put(_frame("b", 1))
    assert slots.close() == 1 and drops[-1] == ("b", DROP_SHUTDOWN)
    assert slots.put(_frame("a", 9)) is False


def test_slots_every_frame_blocks_the_producer_instead_of_dropping():
    slots = FrameSlots(["f"], every_frame={"f"}, depth=2)
    done = threading.Event()

    def produce():
        for i in range(4):
            slots.put(_frame("f", i))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.3)  # two waiting: the producer waits for room
    taken = [slots.take(1.0).index for _ in range(4)]
    assert done.wait(1.0)
    assert taken == [0, 1, 2, 3]


def _config(tmp_path, sources: list[dict], **publish) -> Config:
    stream = StreamConfig.model_validate({
        "sources": sources,
        "publish": {"endpoint": "tcp://127.0.0.1:*", "heartbeat_s": 0.2, **publish},
        "control": {"endpoint": "tcp://127.0.0.1:*", "max_request_bytes": 4096},
        "metrics": {"port": 0},
        "supervisor": {"frozen_after": 0, "backoff_initial": 0.05, "backoff_max": 0.2},
        "cache_dir": str(tmp_path / "cache"),
    })
    return Config(stream=stream)


def _processor(config: Config, sources: dict, engines=None) -> StreamProcessor:
    return StreamProcessor(config, engines or blob_engines(), blob_support(),
                           source_factory=lambda s: (lambda: sources[s.camera_id]()))


def _dropped_paused(proc: StreamProcessor, camera: str) -> float:
    return proc.metrics.registry.get_sample_value("persense_frames_total", {"camera": camera, "outcome": "dropped_paused"})


def _settle_paused(proc: StreamProcessor, camera: str) -> None:
    """After a pause, a handshake instead of a sleep: returns once no frame is segmented or encoded any more.

    A call on the inference thread runs between frames (the frame in flight has finished); two more paused
    drops mean the encode-ahead thread, where there is one, has also moved past the frame it was encoding."""
    proc.worker.call(lambda: None, timeout=10)
    dropped = _dropped_paused(proc, camera)
    assert _wait_for(lambda: _dropped_paused(proc, camera) >= dropped + 2), "no frame was dropped while paused"


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    return wait_until(predicate, timeout)


def test_every_frame_file_is_published_completely_and_in_order(tmp_path):
    counts = [3, 7, 12, 5, 9, 1]
    images = [blob_frame(n, seed=i) for i, n in enumerate(counts)]
    config = _config(tmp_path, [{"uri": "test", "camera_id": "line1", "every_frame": True}], label_map_png=True)
    go = threading.Event()

    def source():
        go.wait(10)  # the camera "connects" once the subscriber is in (ZeroMQ's slow joiner)
        return ListSource("line1", images, counts)

    proc = _processor(config, {"line1": source})
    proc.start()
    try:
        with Subscriber(proc.publisher.endpoint, status=True) as sub:
            # A handshake for ZeroMQ's slow joiner: a status heartbeat arriving proves the subscription is in.
            assert _wait_for(lambda: isinstance(sub.receive(0.5), StatusMessage), 30), "no heartbeat arrived"
            go.set()
            assert _wait_for(proc.finished)
            got = []

            def every_result_in() -> bool:  # heartbeats keep coming: read until every frame's result is in
                got.append(sub.receive(0.5))
                return sum(isinstance(m, ResultMessage) for m in got) >= len(images)

            assert _wait_for(every_result_in, 30)
    finally:
        proc.stop()
    results = [m for m in got if isinstance(m, ResultMessage)]
    assert len(results) == len(images), "every frame's result reaches a subscriber that was in before the first"
    seqs = [m.seq for m in results]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for msg in results:
        h = msg.header
        assert h["camera"] == "line1" and h["count"] == len(h["instances"]) == h["truth_count"] == counts[h["frame_index"]]
        labels = msg.label_map()
        assert labels.shape == (120, 160) and int(labels.max()) == h["count"]
        for mask, inst in zip(msg.masks(), h["instances"]):
            assert mask.shape == (120, 160) and mask.sum() == inst["area"]
    text = proc.metrics.exposition().decode()
    assert 'persense_frames_total{camera="line1",outcome="processed"} 6.0' in text


def test_a_dead_camera_never_blocks_the_live_one_and_shows_in_metrics(tmp_path):
    config = _config(tmp_path, [{"uri": "a", "camera_id": "dead"}, {"uri": "b", "camera_id": "live"}])
    images = [blob_frame(4, seed=1), blob_frame(6, seed=2)]
    proc = _processor(config, {"dead": lambda: DeadSource("dead", []), "live": lambda: LiveSource("live", images)})
    proc.start()
    try:
        with Subscriber(proc.publisher.endpoint, cameras=["dead"]) as sub:
            statuses = [sub.receive(2.0) for _ in range(3)]
        assert _wait_for(lambda: proc.worker.processed.get("live", 0) >= 5)
        assert _wait_for(lambda: proc.supervisors["dead"].reconnects >= 2)
        text = proc.metrics.exposition().decode()
        ready, details = proc.readiness()
    finally:
        proc.stop()
    # Only the dead camera's topic was subscribed: its heartbeats tell the state, no results come.
    assert all(isinstance(m, StatusMessage) and m.camera == "dead" for m in statuses)
    assert {m.header["state"] for m in statuses} <= {"connecting", "reconnecting"}
    assert 'persense_source_up{camera="dead"} 0.0' in text
    assert 'persense_source_up{camera="live"} 1.0' in text
    reconnects = [line for line in text.splitlines() if line.startswith('persense_source_reconnects_total{camera="dead"}')]
    assert reconnects and float(reconnects[0].split()[-1]) >= 2
    assert ready and details["cameras"]["dead"] in ("reconnecting", "connecting")


def test_full_publish_queue_drops_and_counts():
    metrics = StreamMetrics(["c"])
    ctx = zmq.Context()
    publisher = Publisher(ctx, StreamConfig().publish.model_copy(update={"endpoint": "tcp://127.0.0.1:*",
                                                                         "queue_size": 1}),
                          metrics, lambda: {})
    try:
        from streamer.types import SegmentationResult

        result = SegmentationResult(2, 2, [])
        accepted = [publisher.submit(_frame("c", i), result, "s") for i in range(3)]
    finally:
        publisher.stop(0.1)
        ctx.term()
    assert accepted == [True, False, False]
    assert metrics.publish_dropped.labels("c")._value.get() == 2


def _request(endpoint: str, frames: list[bytes], timeout_ms: int = 10000) -> dict:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(timeout_ms), "no reply from the control socket"
        return json.loads(sock.recv())
    finally:
        sock.close()


def test_control_commands_and_bad_requests(tmp_path):
    import cv2

    config = _config(tmp_path, [{"uri": "x", "camera_id": "cam0"}])
    engines = blob_engines()
    proc = _processor(config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])}, engines)
    proc.start()
    try:
        ep = proc.control.endpoint
        status = _request(ep, [b'{"cmd": "status"}'])
        assert status["ok"] and status["cameras"]["cam0"]["state"] in ("connecting", "streaming")
        old_support = status["support_id"]
        assert _request(ep, [b'{"cmd": "pause"}']) == {"ok": True, "paused": True}
        _settle_paused(proc, "cam0")
        processed = proc.worker.processed.get("cam0", 0)
        dropped = _dropped_paused(proc, "cam0")
        assert _wait_for(lambda: _dropped_paused(proc, "cam0") >= dropped + 3)
        assert proc.worker.processed.get("cam0", 0) == processed  # paused: frames are dropped, not segmented
        assert _request(ep, [b'{"cmd": "resume"}'])["paused"] is False
        assert _wait_for(lambda: proc.worker.processed.get("cam0", 0) > processed)

        image = blob_frame(1, seed=9)
        png = lambda a: cv2.imencode(".png", a)[1].tobytes()  # noqa: E731
        reply = _request(ep, [b'{"cmd": "set_support"}', png(image[:, :, ::-1]), png((image[:, :, 0] > 100) * 255)])
        assert reply["ok"] and reply["support_id"] != old_support and reply["width"] == 160
        assert _request(ep, [b'{"cmd": "status"}'])["support_id"] == reply["support_id"]
        calls = engines.encoder.calls
        # The same support again comes from the prototype cache: no encoder pass for it.
        proc.worker.paused.set()
        _settle_paused(proc, "cam0")
        calls = engines.encoder.calls
        again = _request(ep, [b'{"cmd": "set_support"}', png(image[:, :, ::-1]), png((image[:, :, 0] > 100) * 255)])
        assert again["support_id"] == reply["support_id"] and engines.encoder.calls == calls

        for bad, why in [
            ([b"not json"], "JSON"),
            ([b"[1, 2]"], "cmd"),
            ([b'{"cmd": "explode"}'], "unknown cmd"),
            ([b'{"cmd": "set_support"}', b"x"], "2 binary frames"),
            ([b'{"cmd": "set_support"}', b"not a png", b"nor this"], "not a readable"),
            ([b'{"cmd": "status"}', b"\0" * 8192], "exceeds the limit"),
            ([b'{"cmd": "set_support"}', png(image), png(np.zeros((120, 160), np.uint8))], "mask is empty"),
        ]:
            reply = _request(ep, bad)
            assert reply["ok"] is False and why in reply["error"], (bad[0], reply)
        assert _request(ep, [b'{"cmd": "status"}'])["ok"]  # still serving
        assert proc.health()[0]
    finally:
        proc.stop()


def test_prototype_cache_survives_a_restart(tmp_path):
    from streamer.persense.pipeline import PerSense
    from streamer.stream.support import PrototypeCache, apply_support

    cache = PrototypeCache(tmp_path)
    first, second = blob_engines(), blob_engines()
    s1 = apply_support(PerSense(first), *blob_support(), cache)
    s2 = apply_support(PerSense(second), *blob_support(), cache)
    assert first.encoder.calls == 1 and second.encoder.calls == 0
    assert s1.support_id == s2.support_id and np.allclose(s1.prototype, s2.prototype)
    (next(tmp_path.glob("*.npz"))).write_bytes(b"garbage")
    third = blob_engines()
    apply_support(PerSense(third), *blob_support(), cache)  # a corrupt cache file is recomputed, not fatal
    assert third.encoder.calls == 1
