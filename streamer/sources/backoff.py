"""Reconnect delays: exponential backoff with jitter, so many cameras behind one switch do not retry in step."""

from __future__ import annotations

import random


class Backoff:
    """Delays initial, 2*initial, 4*initial ... capped at `maximum`, each scaled by a random factor in
    [1 - jitter, 1 + jitter] (the cap applies before the jitter, so a capped delay may reach maximum * (1 + jitter)).

    Args:
        initial: the first delay (seconds), > 0.
        maximum: the largest un-jittered delay (seconds), >= initial.
        jitter: fraction in [0, 1].
        rng: a random.Random (tests pass a seeded one).
    """

    def __init__(self, initial: float, maximum: float, jitter: float, rng: random.Random | None = None):
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got initial={initial} maximum={maximum}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {jitter}")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt; each call doubles the base delay until the cap."""
        base = min(self.maximum, self.initial * (2.0 ** min(self._attempt, 62)))
        self._attempt += 1
        return base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        """After a success: the next failure starts again at `initial`."""
        self._attempt = 0
