"""RTSP source and supervisor against a real RTSP server (GStreamer's gst-rtsp-server on 127.0.0.1).

The server (tests/peers/rtsp_server.py) runs under the system python, which has Debian's python3-gi;
it serves a moving test pattern as H.264. Skipped only where those packages are absent.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from waiting import wait_until
from streamer.sources import CameraSupervisor, SourceError, SourceState, open_source
from tests.peers.procs import RtspServer, rtsp_server_missing

S = SourceState

_MISSING = rtsp_server_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"RTSP test server unavailable: {_MISSING}")

# Short timeouts keep each test to a few seconds; a dead server must fail within them.
FAST = {"transport": "tcp", "open_timeout": 1.0, "read_timeout": 0.5, "analyzeduration": 0.3}


@pytest.fixture
def server():
    peer = RtspServer()
    try:
        yield peer.start()
    finally:
        peer.stop()


class Watch:
    """A supervisor on `url` that records frames and (time, state, reason)."""

    def __init__(self, url: str, **options) -> None:
        self.frames = []
        self.states: list[tuple[float, SourceState, str]] = []
        self.sup = CameraSupervisor(
            "rtsp0", lambda: open_source(url, "rtsp0", **{**FAST, **options}), self.frames.append,
            lambda camera, state, reason: self.states.append((time.monotonic(), state, reason)),
            stall_timeout=2.0, backoff_initial=0.2, backoff_max=0.5,
        )

    def until(self, condition, timeout: float = 20.0) -> bool:
        return wait_until(condition, timeout)

    def names(self) -> list[SourceState]:
        return [s for _, s, _ in self.states]


@pytest.fixture
def watch():
    made = []

    def make(url: str, **options) -> Watch:
        made.append(Watch(url, **options))
        return made[-1]

    try:
        yield make
    finally:
        for w in made:
            w.sup.stop(timeout=5.0)


def test_frames_arrive_from_a_live_server(server, watch):
    w = watch(server.url)
    w.sup.start()
    assert w.until(lambda: len(w.frames) >= 10), f"no frames; states {w.states}"
    frames = w.frames[:10]
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(10))
    assert not np.array_equal(frames[0].image, frames[-1].image), "the ball pattern moves"
    assert w.sup.state == S.STREAMING and w.sup.resolution == (320, 240)


def test_server_that_goes_away_and_comes_back_is_reconnected(server, watch):
    w = watch(server.url)
    w.sup.start()
    assert w.until(lambda: len(w.frames) >= 5), f"no frames; states {w.states}"
    server.stop()  # SIGKILL: the connection drops
    assert w.until(lambda: S.RECONNECTING in w.names()), f"no reconnect attempt; states {w.states}"
    # Down for a while: several failed connects at growing backoff (counted, not timed).
    assert w.until(lambda: w.sup.reconnects >= 4), "keeps retrying while the server is down"
    down_frames = len(w.frames)
    server.start()  # the same port
    restarted = time.monotonic()
    assert w.until(lambda: len(w.frames) >= down_frames + 5), f"not reconnected; states {w.states}"
    assert w.sup.state == S.STREAMING and w.sup.is_alive()
    names = w.names()
    first_drop = names.index(S.RECONNECTING)
    assert names[:2] == [S.CONNECTING, S.STREAMING]
    assert S.STREAMING in names[first_drop:], "streams again after the drop"
    assert S.ENDED not in names and S.STOPPED not in names
    back = next(t for t, s, _ in w.states[first_drop:] if s == S.STREAMING)
    logging.getLogger(__name__).info("RTSP reconnected %.2fs after the server restarted", back - restarted)


def test_hung_server_times_out_instead_of_blocking(server, watch):
    w = watch(server.url)
    w.sup.start()
    assert w.until(lambda: len(w.frames) >= 5)
    server.pause()  # SIGSTOP: sockets stay open, nothing answers
    try:
        # Reads and then opens must time out: at least two failed connects while the server hangs.
        assert w.until(lambda: w.sup.reconnects >= 2, timeout=30), f"blocked; states {w.states}"
        assert w.sup.state in (S.CONNECTING, S.RECONNECTING, S.STALLED)
    finally:
        server.resume()
    count = len(w.frames)
    assert w.until(lambda: len(w.frames) >= count + 5), f"not recovered; states {w.states}"


def test_transport_option_is_applied():
    udp_only = RtspServer(None, "--protocols", "udp")
    tcp_only = RtspServer(None, "--protocols", "tcp")
    try:
        udp_only.start()
        tcp_only.start()
        for url, transport, works in [
            (udp_only.url, "tcp", False),  # proves the option reaches FFmpeg: TCP-only is refused by this server
            (udp_only.url, "udp", True),
            (tcp_only.url, "tcp", True),
        ]:
            source = open_source(url, "rtsp0", **{**FAST, "transport": transport})
            try:
                if works:
                    source.open()
                    assert source.read(1.0).image.shape == (240, 320, 3)
                else:
                    with pytest.raises(SourceError, match="cannot open rtsp://127.0.0.1"):
                        source.open()
            finally:
                source.close()
    finally:
        udp_only.stop()
        tcp_only.stop()


def test_credentials_work_and_never_reach_logs(watch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    password = "s3cr3t-pw"
    server = RtspServer(None, "--user", "operator", "--password", password)
    try:
        server.start()
        good = watch(server.url.replace("rtsp://", f"rtsp://operator:{password}@"))
        bad = watch(server.url.replace("rtsp://", "rtsp://operator:wr0ng-pw@"))
        good.sup.start()
        bad.sup.start()
        assert good.until(lambda: len(good.frames) >= 3), f"auth failed; states {good.states}"
        assert bad.until(lambda: bad.sup.reconnects >= 1)
        assert not bad.frames
        reasons = " ".join(r for _, _, r in bad.states)
        assert "rtsp://***@127.0.0.1" in reasons
    finally:
        server.stop()
    captured = capfd.readouterr()
    everything = caplog.text + reasons + captured.out + captured.err
    for secret in (password, "wr0ng-pw", "operator"):
        assert secret not in everything
