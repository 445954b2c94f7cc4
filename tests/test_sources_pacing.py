"""The supervisor with slow-paced sources (fake clock), stopping many cameras together, one-line errors.

The scripted sources and the fake clock are test_sources_supervisor's.
"""

from __future__ import annotations

import pytest

from streamer.errors import UserError
from streamer.sources.base import SourceState
from streamer.sources.supervisor import CameraSupervisor
from test_sources_supervisor import FakeClock, Hung, Run, Scripted, image

S = SourceState


# -- slow-paced sources are not stalled ------------------------------------------------------------------

def test_a_slow_file_is_never_stalled_on_the_fake_clock():
    clock = FakeClock()
    # 0.05 fps: twenty empty 1 s reads between frames, four times the stall timeout.
    slow_file = Scripted([image(1)] + [None] * 20 + [image(2)] + [None] * 20 + [image(3)], live=False, clock=clock)
    run = Run([slow_file], read_timeout=1.0, stall_timeout=5.0, clock=clock).go()
    assert S.STALLED not in run.names and run.sup.reconnects == 0
    assert [f.index for f in run.frames] == [0, 1, 2], "no restart at frame 0"


def test_a_slow_paced_live_source_gets_two_periods_before_a_stall():
    clock = FakeClock()
    slow_sim = Scripted([image(1)] + [None] * 9 + [image(2)] + [None] * 19 + [image(3)] + [None] * 30, clock=clock)
    slow_sim.frame_period = 10.0  # 0.1 fps, below 1 / stall_timeout
    healthy = Scripted([image(4)], clock=clock)
    run = Run([slow_sim, healthy], read_timeout=1.0, stall_timeout=5.0, clock=clock).go()
    assert [f.image[0, 0, 0] for f in run.frames] == [1, 2, 3, 4]
    stalls = [r for s, r in run.states if s == S.STALLED]
    assert stalls == ["no frame for 20.0s"], "stalled only after two periods without a frame"
    assert len(slow_sim.reads) == 10 and run.sup.reconnects == 1


def test_paced_sources_say_their_frame_period():
    from streamer.sources.sim import SimulatorSource
    from streamer.sources.supervisor import stall_limit_for

    slow = SimulatorSource("sim0", width=64, height=48, objects=3, fps=0.1)
    assert slow.frame_period == pytest.approx(10.0)
    assert stall_limit_for(slow, 5.0) == pytest.approx(20.0)
    assert stall_limit_for(SimulatorSource("sim1", width=64, height=48, objects=3, fps=30), 5.0) == 5.0
    assert stall_limit_for(Scripted(live=False), 5.0) is None


# -- stopping many cameras together, one-line errors -----------------------------------------------------

def test_request_stop_does_not_wait_and_stop_then_finishes():
    hung = Hung("read")
    sup = CameraSupervisor("cam", lambda: hung, lambda f: None)
    sup.start()
    assert hung.entered.wait(5)
    sup.request_stop()  # returns at once although read() blocks
    assert sup.is_alive() and sup.state != S.STOPPED
    hung.release.set()
    sup.stop(timeout=5.0)
    assert not sup.is_alive() and sup.state == S.STOPPED


def test_errors_are_reported_as_their_first_line():
    from streamer.errors import first_line

    assert first_line(ValueError("\n  bad value  \ntraceback noise")) == "bad value"
    assert first_line(KeyError()) == "KeyError"
    assert first_line("one\ntwo") == "one" and first_line("  \n") == ""

    class GLibLike(Exception):
        message = "Timeout\nmore"

    assert first_line(GLibLike("str form")) == "Timeout"
    run = Run([Scripted(open_error=UserError("no images in folder /x\nand a second line"))]).go()
    assert run.sup.error == "no images in folder /x" and run.states[-1] == (S.ENDED, "error: no images in folder /x")
    run = Run([Scripted(open_error=OSError("\ndevice gone\nerrno details")), Scripted([image(1)])]).go()
    assert [r for s, r in run.states if s == S.RECONNECTING][0].startswith("connect failed: OSError: device gone;")
