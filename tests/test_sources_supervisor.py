"""CameraSupervisor and Backoff: reconnects, stall and frozen-frame detection, stop, isolation.

The sources here are scripted test doubles of the FrameSource protocol (the real peers are in
test_sources_rtsp.py and test_sources_gige.py); stall detection runs on a fake clock.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import numpy as np
import pytest

from streamer.errors import UserError
from streamer.sources.backoff import Backoff
from streamer.sources.base import Frame, SourceEnded, SourceError, SourceState
from streamer.sources.supervisor import CameraSupervisor, image_digest

S = SourceState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def image(value: int, width: int = 32, height: int = 24) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


class Scripted:
    """A source whose open and reads follow a script.

    reads: items are an ndarray (a frame), None (no frame within the timeout; advances `clock` by the
    timeout when given), or an exception instance to raise. After the script: SourceEnded.
    """

    def __init__(self, reads=(), open_error: Exception | None = None, live: bool = True, clock=None):
        self.reads = list(reads)
        self.open_error = open_error
        self.live = live
        self.clock = clock
        self.opened = self.closed = 0
        self.index = 0

    def open(self) -> None:
        self.opened += 1
        if self.open_error is not None:
            raise self.open_error

    def read(self, timeout: float):
        if not self.reads:
            raise SourceEnded("script done")
        item = self.reads.pop(0)
        if isinstance(item, Exception):
            raise item
        if item is None:
            if self.clock is not None:
                self.clock.now += timeout
            return None
        self.index += 1
        return Frame(image=item, index=self.index - 1, capture_ts=time.time(), camera="cam")

    def close(self) -> None:
        self.closed += 1


class Run:
    """Collects a supervisor's frames and states; `go()` runs it until its thread ends by itself."""

    def __init__(self, sources, **kwargs) -> None:
        self.sources = list(sources)
        self.made = []
        self.frames: list[Frame] = []
        self.states: list[tuple[SourceState, str]] = []
        kwargs = {"backoff_initial": 0.001, "backoff_max": 0.004, "jitter": 0.0, **kwargs}
        self.sup = CameraSupervisor("cam", self._factory, self.frames.append, self._state, **kwargs)

    def _factory(self):
        source = self.sources.pop(0)
        if isinstance(source, Exception):
            raise source
        self.made.append(source)
        return source

    def _state(self, camera, state, reason) -> None:
        assert camera == "cam"
        self.states.append((state, reason))

    def go(self, timeout: float = 20.0) -> "Run":
        self.sup.start()
        self.sup._thread.join(timeout)
        alive = self.sup.is_alive()
        self.sup.stop(timeout=1.0)
        assert not alive, f"supervisor still running; states {self.states}"
        return self

    @property
    def names(self) -> list[SourceState]:
        return [s for s, _ in self.states]


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter():
    backoff = Backoff(0.5, 30.0, 0.25, random.Random(7))
    bases = [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    delays = [backoff.next() for _ in bases]
    for base, delay in zip(bases, delays):
        assert base * 0.75 <= delay <= base * 1.25
    assert len({round(d / b, 6) for d, b in zip(delays, bases)}) > 1, "jitter should vary the factor"
    backoff.reset()
    assert 0.375 <= backoff.next() <= 0.625
    exact = Backoff(1.0, 5.0, 0.0)
    assert [exact.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_rejects_bad_settings():
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0, 0.1)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0, 0.1)
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0, 1.5)


def test_failed_opens_are_retried_with_growing_backoff_then_stream():
    run = Run([
        Scripted(open_error=SourceError("refused")),
        Scripted(open_error=RuntimeError("driver hiccup")),
        SourceError("factory failed"),
        Scripted([image(1), image(2), image(3)]),
    ]).go()
    assert run.sup.reconnects == 3
    assert [f.image[0, 0, 0] for f in run.frames] == [1, 2, 3]
    assert run.names == [S.CONNECTING, S.RECONNECTING] * 3 + [S.CONNECTING, S.STREAMING, S.ENDED]
    retry_reasons = [r for s, r in run.states if s == S.RECONNECTING]
    assert "refused" in retry_reasons[0] and "RuntimeError: driver hiccup" in retry_reasons[1]
    assert all(s.closed >= 1 for s in run.made), "every source is closed, failed ones included"
    assert run.sup.state == S.ENDED and run.sup.error is None


def test_backoff_grows_while_failing_and_resets_after_a_frame():
    down = [Scripted(open_error=SourceError("down")) for _ in range(4)]
    run = Run(down[:3] + [Scripted([image(1), SourceError("broke")]), down[3], Scripted([image(2)])],
              backoff_initial=0.01, backoff_max=1.0, jitter=0.0).go()
    delays = [r.rsplit("retry in ", 1)[1] for s, r in run.states if s == S.RECONNECTING]
    assert delays == ["0.01s", "0.02s", "0.04s", "0.01s", "0.02s"]
    assert run.sup.reconnects == 5 and len(run.frames) == 2


def test_stall_detected_on_the_fake_clock_then_reconnect():
    clock = FakeClock()
    stalled = Scripted([image(1)] + [None] * 20, clock=clock)
    healthy = Scripted([image(2), image(3)], clock=clock)
    run = Run([stalled, healthy], read_timeout=1.0, stall_timeout=5.0, clock=clock).go()
    assert run.names == [S.CONNECTING, S.STREAMING, S.STALLED, S.RECONNECTING, S.CONNECTING, S.STREAMING, S.ENDED]
    assert dict(run.states)[S.STALLED] == "no frame for 5.0s"
    assert len(stalled.reads) == 15, "stalled after exactly 5 empty reads of 1 s on the fake clock"
    assert stalled.closed == 1 and run.sup.reconnects == 1
    assert run.sup.last_frame_monotonic == clock.now


def test_frozen_frames_trigger_a_reconnect_but_not_for_files():
    frozen = Scripted([image(9)] * 10)
    moving = Scripted([image(i) for i in range(10)])
    run = Run([frozen, moving], frozen_after=5).go()
    assert (S.STALLED, "frozen: 5 identical frames") in run.states
    assert len(run.frames) == 4 + 10, "the 5th identical frame is not delivered"
    assert run.sup.reconnects == 1

    still_video = Scripted([image(9)] * 10, live=False)
    run = Run([still_video], frozen_after=5).go()
    assert len(run.frames) == 10 and S.STALLED not in run.names


def test_digest_sees_content_and_shape():
    a = image(5)
    b = a.copy()
    b[10, 10] = 6
    assert image_digest(a) == image_digest(a.copy())
    assert image_digest(a) != image_digest(b)
    assert image_digest(image(5, 32, 24)) != image_digest(image(5, 24, 32))


def test_resolution_change_after_reconnect_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="streamer.sources.supervisor")
    run = Run([Scripted([image(1), SourceError("gone")]), Scripted([image(2, 64, 48)])]).go()
    assert len(run.frames) == 2 and run.sup.resolution == (64, 48)
    assert "resolution changed 32x24 -> 64x48" in caplog.text
    assert [r for s, r in run.states if s == S.STREAMING] == ["32x24", "64x48"]


def test_consumer_errors_do_not_stop_the_camera(caplog):
    seen = []

    def on_frame(frame):
        seen.append(frame.index)
        raise ValueError("consumer bug")

    sup = CameraSupervisor("cam", lambda: Scripted([image(i) for i in range(5)]), on_frame,
                           backoff_initial=0.001)
    sup.start()
    sup._thread.join(10)
    assert seen == [0, 1, 2, 3, 4] and sup.state == S.ENDED
    assert "on_frame failed" in caplog.text


def test_user_error_ends_the_camera_without_retrying():
    run = Run([Scripted(open_error=UserError("no images in folder /x"))]).go()
    assert run.names == [S.CONNECTING, S.ENDED]
    assert run.sup.error == "no images in folder /x" and run.sup.reconnects == 0


class Hung:
    """A driver call that never returns until released (a camera that ignores its timeouts)."""

    live = True

    def __init__(self, hang_in: str) -> None:
        self.hang_in = hang_in
        self.release = threading.Event()
        self.entered = threading.Event()
        self.closed = 0

    def open(self) -> None:
        if self.hang_in == "open":
            self.entered.set()
            self.release.wait()

    def read(self, timeout):
        if self.hang_in == "read":
            self.entered.set()
            self.release.wait()
        raise SourceError("released")

    def close(self) -> None:
        self.closed += 1


def test_stop_returns_while_the_source_hangs_and_the_thread_cleans_up_later():
    hung = Hung("read")
    states = []
    sup = CameraSupervisor("cam", lambda: hung, lambda f: None, lambda c, s, r: states.append(s))
    sup.start()
    assert hung.entered.wait(5)
    sup.stop(timeout=0.1)  # returns although read() still blocks
    assert sup.state == S.STOPPED and sup.is_alive()
    hung.release.set()
    sup._thread.join(5)
    assert not sup.is_alive() and hung.closed == 1
    assert states[-1] == S.STOPPED and states.count(S.STOPPED) == 1, "no state after the final STOPPED"


def test_a_hung_camera_does_not_block_another():
    hung = Hung("open")
    frames = []
    stuck = CameraSupervisor("stuck", lambda: hung, lambda f: None)
    healthy = CameraSupervisor("ok", lambda: Scripted([image(i) for i in range(20)]), frames.append)
    try:
        stuck.start()
        assert hung.entered.wait(5)
        healthy.start()
        healthy._thread.join(10)
        assert len(frames) == 20 and healthy.state == S.ENDED
        assert stuck.state == S.CONNECTING
    finally:
        stuck.stop(timeout=0.1)
        hung.release.set()
        healthy.stop()


def test_stop_during_backoff_is_prompt_and_final():
    states = []
    sup = CameraSupervisor("cam", lambda: Scripted(open_error=SourceError("down")), lambda f: None,
                           lambda c, s, r: states.append(s), backoff_initial=60.0, backoff_max=60.0)
    sup.start()
    deadline = time.monotonic() + 10
    while S.RECONNECTING not in states and time.monotonic() < deadline:
        time.sleep(0.01)
    sup.stop(timeout=5.0)
    assert not sup.is_alive(), "the backoff wait must end on stop()"
    assert states == [S.CONNECTING, S.RECONNECTING, S.STOPPED]
    with pytest.raises(RuntimeError):
        sup.start()
