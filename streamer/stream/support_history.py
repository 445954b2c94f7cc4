"""The supports a processor has used, newest last, so that a replaced support can be put back (Undo)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SupportRecord:
    image: np.ndarray  # uint8[H, W, 3] RGB
    mask: np.ndarray  # bool[H, W]
    support_id: str


class SupportHistory:
    """Thread-safe and bounded: the oldest records are forgotten beyond `depth`."""

    def __init__(self, depth: int = 8):
        self._records: deque[SupportRecord] = deque(maxlen=depth)
        self._lock = threading.Lock()

    def push(self, image: np.ndarray, mask: np.ndarray, support_id: str) -> None:
        with self._lock:
            if self._records and self._records[-1].support_id == support_id:
                return  # the same support again is not a step to undo
            self._records.append(SupportRecord(image, np.asarray(mask, bool), support_id))

    def current(self) -> SupportRecord | None:
        with self._lock:
            return self._records[-1] if self._records else None

    def previous(self) -> SupportRecord | None:
        """The support before the current one, or None when there is none to go back to."""
        with self._lock:
            return self._records[-2] if len(self._records) > 1 else None

    def drop_current(self) -> None:
        """After an undo applied `previous()`: it becomes the current one again."""
        with self._lock:
            if len(self._records) > 1:
                self._records.pop()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
