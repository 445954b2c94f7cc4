"""Frames waiting for inference: one bounded slot per camera, the newest frame wins.

Capture threads put, the one inference thread takes, cameras in turn. A live camera never waits: a frame
that is replaced before inference reaches it is dropped and counted. A file source that asked for every
frame waits instead (it has no clock to fall behind), until there is room or the slots close. Which
cameras keep every frame is set per connection (set_every_frame), once the source says whether it is live.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from streamer.sources.base import Frame

DROP_STALE = "dropped_stale"  # replaced by a newer frame of the same camera before inference took it
DROP_SHUTDOWN = "dropped_shutdown"  # still waiting when the processor stopped


class FrameSlots:
    """Bounded per-camera frame buffers with a round-robin take.

    Args:
        cameras: camera ids, in the order they are served.
        every_frame: camera ids whose frames are all kept (up to `depth` waiting; the producer blocks).
        on_drop: called with (camera, reason) for each dropped frame, from the thread that dropped it.
        depth: frames an every-frame camera may have waiting.
    """

    def __init__(
        self,
        cameras: list[str],
        every_frame: set[str] | frozenset[str] = frozenset(),
        on_drop: Callable[[str, str], None] = lambda camera, reason: None,
        depth: int = 2,
    ):
        self._order = list(cameras)
        self._every = set(every_frame)
        self._depth = depth
        self._frames: dict[str, deque[Frame]] = {c: deque() for c in self._order}
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._next = 0
        self._closed = False
        self._in_flight = 0  # taken but not yet marked done

    def set_every_frame(self, camera: str, enabled: bool) -> None:
        """Keep every frame of `camera` (the producer waits for room) or only the newest (it never waits)."""
        with self._cond:
            if enabled:
                self._every.add(camera)
            else:
                self._every.discard(camera)
            self._cond.notify_all()  # a producer waiting for room under the old mode re-checks

    def keeps_every_frame(self, camera: str) -> bool:
        with self._cond:
            return camera in self._every

    def put(self, frame: Frame) -> bool:
        """Offer a frame; False if the slots are closed (the frame is then dropped)."""
        queue = self._frames[frame.camera]
        with self._cond:
            while frame.camera in self._every and len(queue) >= self._depth and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                dropped = True
            else:
                dropped = False
                stale = 0
                if frame.camera not in self._every:
                    # Usually one; more only right after the camera left every-frame mode.
                    stale = len(queue)
                    queue.clear()
                queue.append(frame)
                self._cond.notify_all()
        if dropped:
            self._on_drop(frame.camera, DROP_SHUTDOWN)
            return False
        for _ in range(stale):
            self._on_drop(frame.camera, DROP_STALE)
        return True

    def take(self, timeout: float) -> Frame | None:
        """The oldest waiting frame of the next camera in turn that has one, or None after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self.pending_locked() > 0, timeout):
                return None
            n = len(self._order)
            for step in range(n):
                camera = self._order[(self._next + step) % n]
                if self._frames[camera]:
                    self._next = (self._next + step + 1) % n
                    frame = self._frames[camera].popleft()
                    self._in_flight += 1
                    self._cond.notify_all()  # an every-frame producer may wait for this room
                    return frame
            return None

    def task_done(self) -> None:
        """The consumer finished a taken frame (processed, failed or dropped)."""
        with self._cond:
            self._in_flight = max(self._in_flight - 1, 0)

    def idle(self) -> bool:
        """No frame waiting and none being processed."""
        with self._cond:
            return self._in_flight == 0 and self.pending_locked() == 0

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def pending_locked(self) -> int:
        return sum(len(q) for q in self._frames.values())

    def pending(self) -> int:
        with self._cond:
            return self.pending_locked()

    def close(self) -> int:
        """Refuse further frames, wake every waiter and drop what is waiting; -> how many were dropped."""
        with self._cond:
            self._closed = True
            leftovers = [(c, len(q)) for c, q in self._frames.items()]
            for q in self._frames.values():
                q.clear()
            self._cond.notify_all()
        for camera, n in leftovers:
            for _ in range(n):
                self._on_drop(camera, DROP_SHUTDOWN)
        return sum(n for _, n in leftovers)
