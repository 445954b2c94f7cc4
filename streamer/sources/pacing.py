"""Release frames at a fixed rate, for sources that have no clock of their own (simulator, paced files)."""

from __future__ import annotations

import time
from typing import Callable


class Pacer:
    """Frame i is due at start + i / fps. A consumer that fell behind does not get a burst afterwards:
    the schedule restarts from now when it is more than one period late.

    Args:
        fps: frames per second; <= 0 or None releases every frame at once (no pacing).
    """

    def __init__(
        self,
        fps: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.period = 1.0 / fps if fps and fps > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def wait(self, timeout: float) -> bool:
        """Sleep until the next frame is due -> True, or for `timeout` seconds if it is due later -> False."""
        if self.period == 0.0:
            return True
        now = self._clock()
        if self._due is None or now - self._due > self.period:
            self._due = now
        delay = self._due - now
        if delay > timeout:
            self._sleep(max(timeout, 0.0))
            return False
        if delay > 0:
            self._sleep(delay)
        self._due += self.period
        return True
