"""`persense bench`'s frame loop: the next frame is read on a capture thread while this one is processed,
as `persense run` reads its cameras, and nothing is read once the source is closed."""

import threading
import time

import numpy as np
import pytest

from streamer.bench import _frames, run_benchmark
from streamer.errors import UserError
from streamer.sources.base import Frame, SourceEnded


class SlowSource:
    """Frames that take `delay` seconds to read; records which thread read them and when the source closed."""

    live = True

    def __init__(self, frames: int, delay: float = 0.02):
        self.frames, self.delay = frames, delay
        self.reads: list[tuple[int, str, float, float]] = []  # index, thread, start, end
        self.attempts: list[float] = []  # when each read started, including any after close
        self.closed_at: float | None = None
        self.index = 0

    def open(self):
        pass

    def read(self, timeout):
        self.attempts.append(time.perf_counter())
        if self.index >= self.frames:
            raise SourceEnded("done")
        start = time.perf_counter()
        time.sleep(self.delay)
        frame = Frame(np.zeros((8, 8, 3), np.uint8), self.index, time.time(), "c")
        self.reads.append((self.index, threading.current_thread().name, start, time.perf_counter()))
        self.index += 1
        return frame

    def close(self):
        self.closed_at = time.perf_counter()


def test_the_next_frame_is_read_while_this_one_is_processed():
    source = SlowSource(5, delay=0.03)
    seen = []
    for frame, t0, t1, encoded in _frames(source, None, 5, "test", encode_ahead=False):
        time.sleep(0.03)  # processing
        seen.append((frame.index, time.perf_counter()))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert all(name.startswith("capture") for _, name, _, _ in source.reads)
    # Frame k + 1's read started before frame k's processing ended.
    for (k, done), (_, _, start, _) in zip(seen[:-1], source.reads[1:]):
        assert start < done
    assert len(source.reads) == 5  # none beyond the count asked for


def test_a_failing_frame_stops_reading_before_the_source_closes():
    class Failing:
        engines = None
        support = None

        def segment(self, image, encoded=None):
            raise RuntimeError("boom")

    source = SlowSource(100, delay=0.05)
    with pytest.raises(RuntimeError, match="boom"):
        run_benchmark(Failing(), source, frames=3, warmup=0)
    assert source.closed_at is not None
    assert source.attempts and all(start < source.closed_at for start in source.attempts)
    assert all(end <= source.closed_at for _, _, _, end in source.reads)
    assert len(source.attempts) <= 2


def test_a_source_that_ends_early_is_one_clear_error():
    class Counting:
        support = type("S", (), {"support_id": "s"})()

        def segment(self, image, encoded=None):
            raise AssertionError("never reached")

    with pytest.raises(UserError, match="ended before any frame"):
        run_benchmark(Counting(), SlowSource(0), frames=3, warmup=0)
