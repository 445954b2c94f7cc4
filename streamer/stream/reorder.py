"""Outcomes of frames that finish out of order, handed on in the order the frames were taken.

The stream's workers (streamer.stream.parallel) segment several frames at once; a frame that is quick to segment
(few objects) overtakes a slow one. Subscribers, tracking and tallies need the frames of a camera in capture
order, so each taken frame gets the next sequence number and its outcome waits here until every earlier one
has been handed on.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    """Sequence numbers 0, 1, 2, ... in, in any order; the same, in order, out. Not thread-safe.

    Args:
        capacity: how many numbers may be open at once (taken, not yet handed on); the taker asks `has_room`
            before it numbers another frame, so that a frame stuck in a worker holds up at most this many.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._next_out = 0  # the oldest number not handed on
        self._next_in = 0  # the number the next taken frame gets
        self._done: dict[int, T] = {}

    def has_room(self) -> bool:
        return self._next_in - self._next_out < self.capacity

    def number(self) -> int:
        """The next frame's sequence number; ValueError when `capacity` numbers are open."""
        if not self.has_room():
            raise ValueError(f"{self.capacity} frames are open already")
        seq, self._next_in = self._next_in, self._next_in + 1
        return seq

    def open(self) -> int:
        """Numbers handed out whose outcome has not been handed on."""
        return self._next_in - self._next_out

    def put(self, seq: int, outcome: T) -> list[T]:
        """The outcome of frame `seq` -> the outcomes now due, in order (empty while an earlier one is missing)."""
        if not self._next_out <= seq < self._next_in or seq in self._done:
            raise ValueError(f"sequence number {seq} is not open (open: {self._next_out}..{self._next_in - 1})")
        self._done[seq] = outcome
        due = []
        while self._next_out in self._done:
            due.append(self._done.pop(self._next_out))
            self._next_out += 1
        return due
