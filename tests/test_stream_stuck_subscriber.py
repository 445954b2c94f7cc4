"""A subscriber that connects, subscribes and never reads (a raw ZMTP peer) beside a healthy one: the healthy
one gets every result, the publisher never blocks, and the stuck one's losses are counted."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import zmq

from streamer.sources.base import Frame
from streamer.stream.config import StreamConfig
from streamer.stream.metrics import StreamMetrics
from streamer.stream.publisher import Publisher
from streamer.types import SegmentationResult
from tests.peers.zmtp import StuckSubscriber
from waiting import wait_until


def test_a_stuck_subscriber_never_delays_or_starves_a_healthy_one():
    metrics = StreamMetrics(["c"])
    ctx = zmq.Context()
    # The default settings, apart from the bound endpoint and quick heartbeats.
    config = StreamConfig().publish.model_copy(update={"endpoint": "tcp://127.0.0.1:*", "overlay_jpeg": True,
                                                       "heartbeat_s": 0.05})
    publisher = Publisher(ctx, config, metrics, lambda: {"c": {"state": "streaming"}})
    healthy = ctx.socket(zmq.SUB)
    healthy.setsockopt(zmq.LINGER, 0)
    healthy.setsockopt(zmq.SUBSCRIBE, b"persense/c/")
    healthy.connect(publisher.endpoint)
    stuck = StuckSubscriber(publisher.endpoint, b"persense/c/")
    publisher.start()
    seqs: list[int] = []
    done = threading.Event()

    def read_healthy():
        while not done.is_set():
            if healthy.poll(50):
                frames = healthy.recv_multipart()
                if frames[0].endswith(b"/result"):
                    seqs.append(json.loads(frames[1])["seq"])

    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # ~100 kB JPEG overlays
    reader = threading.Thread(target=read_healthy, daemon=True)
    try:
        assert stuck.handshake_done(), "the raw peer did not get through the ZMTP handshake"
        assert healthy.poll(10000), "no heartbeat reached the healthy subscriber"
        reader.start()
        sent = 0
        # Publish until the stuck peer's buffers are full and its overflow shows (bounded: at most 3000 results).
        overflows = metrics.subscriber_overflows.labels("c")._value.get
        while sent < 3000 and (overflows() < 1 or sent < 300):
            assert publisher.submit(Frame(noise, sent, time.time(), "c"), SegmentationResult(320, 240, []), "s",
                                    wait=True)
            sent += 1
        assert wait_until(publisher.idle, 30)
        # Heartbeats keep coming, so the reader stops once the last result arrived (or after 30 s).
        wait_until(lambda: bool(seqs) and seqs[-1] == sent - 1, 30)
        done.set()
        reader.join(30)
    finally:
        done.set()
        if reader.is_alive():
            reader.join(30)
        publisher.stop(0.1)
        healthy.close()
        stuck.close()
        ctx.term()
    assert overflows() >= 1, "the stuck subscriber's overflow is counted"
    assert metrics.publish_dropped.labels("c")._value.get() == 0, "no result was lost for every subscriber"
    assert seqs == list(range(sent)), f"the healthy subscriber missed results: got {len(seqs)} of {sent}"
