"""A frame's cache of maps that several engine calls share, safe where several products of one camera segment the
frame on threads of their own (streamer.persense.products): each key is computed once, by the first caller; the
others wait for it and take the same array.

Only maps that do not depend on which support asks belong here (the frame's descriptors smoothed, its filter
planes of one scale): they are the same whichever product computes them first, so a frame's products find the same
as when they ran in turn.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class FrameCache(dict):
    """A dict whose `once(key, compute)` computes each key's value once among threads."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._guard = threading.Lock()
        self._locks: dict = {}

    def once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """self[key], computed by compute() where no caller has yet. A compute that itself asks for other keys
        is fine (each key has its own lock; the maps' dependencies never form a cycle)."""
        if key in self:
            return self[key]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self:
                self[key] = compute()
        return self[key]

    def __reduce__(self):  # its locks stay behind (a copy in another process starts unlocked)
        return FrameCache, (dict(self),)


def compute_once(memo: dict, key: Any, compute: Callable[[], Any]) -> Any:
    """memo[key], computed by compute() where missing: FrameCache.once for a FrameCache, else a plain dict's
    (one thread)."""
    once = getattr(memo, "once", None)
    if once is not None:
        return once(key, compute)
    if key not in memo:
        memo[key] = compute()
    return memo[key]
