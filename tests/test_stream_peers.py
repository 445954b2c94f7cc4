"""The stream processor with real cameras: an RTSP server that goes away and comes back, and the Aravis
fake GigE Vision camera. Metrics are read over HTTP. Skipped only where the peers' packages are absent.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from streamer.engine_factory import build_engines
from waiting import wait_until
from streamer.config import Config, EnginesConfig
from streamer.stream.config import StreamConfig
from streamer.stream.processor import StreamProcessor
from test_stream_doubles import blob_support
from tests.peers.procs import FakeGigECamera, RtspServer, rtsp_server_missing

RTSP_FAST = {"transport": "tcp", "open_timeout": 1.0, "read_timeout": 0.5, "analyzeduration": 0.3}


def _processor(tmp_path, uri: str, options: dict) -> StreamProcessor:
    stream = StreamConfig.model_validate({
        "sources": [{"uri": uri, "camera_id": "peer", "options": options}],
        "publish": {"endpoint": "tcp://127.0.0.1:*"},
        "control": {"endpoint": None},
        "metrics": {"port": 0},
        "supervisor": {"stall_timeout": 2.0, "backoff_initial": 0.2, "backoff_max": 0.5},
        "cache_dir": str(tmp_path),
    })
    # Any support works for plumbing: the test pattern has no products, the pipeline still runs per frame.
    return StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()), blob_support())


def _metric(proc: StreamProcessor, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.http.port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf'^{name}{{camera="peer"(,outcome="processed")?}} (\S+)$', text, re.M)
    assert match, f"{name} missing"
    return float(match.group(2))


def _until(condition, timeout: float = 30.0) -> bool:
    return wait_until(condition, timeout, interval=0.1)


@pytest.mark.skipif(rtsp_server_missing() is not None, reason=f"RTSP test server unavailable: {rtsp_server_missing()}")
def test_rtsp_camera_that_drops_out_is_reconnected_and_counted(tmp_path):
    server = RtspServer().start()
    proc = _processor(tmp_path, server.url, RTSP_FAST)
    try:
        proc.start()
        processed = lambda: _metric(proc, "persense_frames_total")  # noqa: E731
        assert _until(lambda: processed() >= 3), "no frames processed from the RTSP camera"
        assert _metric(proc, "persense_source_up") == 1.0
        server.stop()
        assert _until(lambda: _metric(proc, "persense_source_up") == 0.0), "the drop-out is not visible"
        # The age keeps growing while the camera is away (polled, not slept for).
        assert _until(lambda: _metric(proc, "persense_last_frame_age_seconds") > 1.0), "the frame age stands still"
        before = processed()
        server.start()  # the same port, no restart of the processor
        assert _until(lambda: processed() >= before + 3), "not reconnected"
        assert _metric(proc, "persense_source_up") == 1.0
        assert _metric(proc, "persense_source_reconnects_total") >= 1
        assert proc.worker.alive()
    finally:
        proc.stop()
        server.stop()


@pytest.mark.skipif(FakeGigECamera.missing() is not None, reason=f"fake GigE camera unavailable: {FakeGigECamera.missing()}")
def test_gige_fake_camera_streams_through_the_pipeline(tmp_path):
    from streamer.errors import UserError
    from streamer.sources.gige import load_aravis

    try:
        load_aravis()
    except UserError as exc:
        pytest.skip(str(exc))
    camera = FakeGigECamera().start()
    proc = _processor(tmp_path, f"gige:{camera.serial}", {"width": 320, "height": 240})
    try:
        proc.start()
        assert _until(lambda: _metric(proc, "persense_frames_total") >= 3), "no frames from the GigE camera"
        assert proc.publisher.seq.get("peer", 0) >= 3
        assert _metric(proc, "persense_source_up") == 1.0
    finally:
        proc.stop()
        camera.stop()
