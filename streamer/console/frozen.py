"""Frozen frames: the live frames an operator stopped on to pick the product, with their picks.

Bounded (the oldest go first) and thread-safe; a frame's embedding is computed on its first pick and kept,
so further clicks on the same frame cost only the decoder.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from streamer.errors import UserError
from streamer.persense.pick import Pick

MAX_FROZEN = 8
MAX_PICKS = 16


@dataclass
class FrozenFrame:
    freeze_id: str
    camera: str
    frame_index: int
    image: np.ndarray  # uint8[H, W, 3] RGB
    embedding: object | None = None  # the encoder's ImageEmbedding, after the first pick
    picks: OrderedDict[str, Pick] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_pick(self, pick: Pick) -> str:
        pick_id = secrets.token_hex(6)
        with self.lock:
            self.picks[pick_id] = pick
            while len(self.picks) > MAX_PICKS:
                self.picks.popitem(last=False)
        return pick_id

    def pick(self, pick_id: str) -> Pick:
        with self.lock:
            found = self.picks.get(pick_id)
        if found is None:
            raise UserError("that preview is gone: click the object again")
        return found


class FrozenFrames:
    def __init__(self, capacity: int = MAX_FROZEN):
        self._frames: OrderedDict[str, FrozenFrame] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, camera: str, frame_index: int, image: np.ndarray) -> FrozenFrame:
        frozen = FrozenFrame(secrets.token_hex(8), camera, frame_index, image)
        with self._lock:
            self._frames[frozen.freeze_id] = frozen
            while len(self._frames) > self._capacity:
                self._frames.popitem(last=False)
        return frozen

    def get(self, freeze_id: str) -> FrozenFrame:
        with self._lock:
            found = self._frames.get(freeze_id)
        if found is None:
            raise UserError("that frozen frame is gone (too many since): freeze the live view again")
        return found
