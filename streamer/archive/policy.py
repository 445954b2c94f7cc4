"""Which frames a camera keeps: the keep policy's rules over one frame's figures, and the seconds around events.

`CameraRules.decide` is called on the inference thread for every result; it only compares numbers, so it costs
nothing the frame loop would notice. Events (an out-of-spec item, a reject, low match quality, a count jump, an
operator's mark) also keep the frames held from the last `before_s` seconds and the next `after_s` seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from streamer.archive.config import KeepPolicy

# A frame's reasons to be kept (the index's `reasons`, comma-separated). EVENTS also keep the frames around them.
SAMPLE, OUT_OF_SPEC, REJECT, LOW_QUALITY, COUNT_JUMP, MARK, BEFORE, AFTER = (
    "sample", "out_of_spec", "reject", "low_quality", "count_jump", "mark", "before", "after")
EVENTS = frozenset({OUT_OF_SPEC, REJECT, LOW_QUALITY, COUNT_JUMP, MARK})


@dataclass(frozen=True)
class FrameFacts:
    """One result's figures the rules look at. ts: capture time (unix s); out_of_spec: items found out of spec
    since the previous frame; rejected: a reject message named this frame; marked: an operator marked it."""

    ts: float
    count: int
    match_quality: float
    out_of_spec: int = 0
    rejected: bool = False
    marked: bool = False


class CameraRules:
    """One camera's policy and the little it remembers (the last kept sample, the previous count, the open
    `after` window, the frames held for `before`). Used by one thread only."""

    def __init__(self, policy: KeepPolicy):
        self.policy = policy
        self._seen = 0
        self._last_sample_ts: float | None = None
        self._previous_count: int | None = None
        self._after_until = float("-inf")
        self.held: deque = deque(maxlen=max(policy.max_context_frames, 1))  # (capture ts, frame) not kept yet

    def decide(self, facts: FrameFacts) -> list[str]:
        """-> the frame's reasons to be kept ([]: not kept)."""
        p = self.policy
        reasons = []
        self._seen += 1
        if (p.every_n is not None and (self._seen - 1) % p.every_n == 0) or (
                p.every_s is not None and (self._last_sample_ts is None or facts.ts - self._last_sample_ts >= p.every_s)):
            reasons.append(SAMPLE)
            self._last_sample_ts = facts.ts
        if p.out_of_spec and facts.out_of_spec > 0:
            reasons.append(OUT_OF_SPEC)
        if p.rejects and facts.rejected:
            reasons.append(REJECT)
        if p.quality_below is not None and facts.count > 0 and facts.match_quality < p.quality_below:
            reasons.append(LOW_QUALITY)
        if (p.count_jump is not None and self._previous_count is not None
                and abs(facts.count - self._previous_count) > p.count_jump):
            reasons.append(COUNT_JUMP)
        if facts.marked:
            reasons.append(MARK)
        self._previous_count = facts.count
        if any(r in EVENTS for r in reasons):
            self._after_until = facts.ts + p.after_s
        elif facts.ts <= self._after_until:
            reasons.append(AFTER)
        return reasons

    def wants_before(self, reasons: list[str]) -> bool:
        """Whether the held frames (the last `before_s` seconds) are to be kept with this frame."""
        return self.policy.before_s > 0 and self.policy.max_context_frames > 0 and any(r in EVENTS for r in reasons)

    def hold(self, ts: float, item) -> None:
        """Hold a frame not kept (for a later event's `before`), forgetting those older than before_s."""
        if self.policy.before_s <= 0 or self.policy.max_context_frames <= 0:
            return
        self.held.append((ts, item))
        while self.held and ts - self.held[0][0] > self.policy.before_s:
            self.held.popleft()

    def take_held(self, now_ts: float) -> list:
        """The held frames of the last before_s seconds, oldest first; the hold is emptied."""
        items = [item for ts, item in self.held if now_ts - ts <= self.policy.before_s]
        self.held.clear()
        return items
