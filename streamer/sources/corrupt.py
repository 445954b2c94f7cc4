"""Counting what a source could not decode (a corrupt frame, a truncated file, an unreadable image) without
flooding the log: the stream goes on, the count goes to metrics, the log gets one line per interval."""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)


class CorruptCounter:
    """One source's undecodable frames and files.

    Args:
        label: names the source in the log (credentials already redacted).
        interval_s: at most one log line per this many seconds; the others are summed into the next line.

    Attributes:
        total: frames and files skipped so far.
        on_count: called with each addition (the processor points it at its metrics); set by the owner.
    """

    def __init__(self, label: str, interval_s: float = 10.0):
        self.label = label
        self.interval_s = interval_s
        self.total = 0
        self.on_count: Callable[[int], None] = lambda n: None
        self._unlogged = 0
        self._last_log = -float("inf")

    def add(self, n: int, why: str) -> None:
        if n <= 0:
            return
        self.total += n
        self._unlogged += n
        try:
            self.on_count(n)
        except Exception:  # a metrics hook must not stop the source
            log.exception("counting corrupt frames of %s failed", self.label)
        now = time.monotonic()
        if now - self._last_log >= self.interval_s:
            log.warning("%s: skipping %d undecodable frame(s) or file(s) (%d in all); last: %s",
                        self.label, self._unlogged, self.total, why)
            self._unlogged = 0
            self._last_log = now
