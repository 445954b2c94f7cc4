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


class Recent:
    """At most `capacity` items by id, the oldest dropped first; thread-safe. Asking for one that is gone is a
    UserError saying `gone`."""

    def __init__(self, capacity: int, gone: str):
        self._items: OrderedDict[str, object] = OrderedDict()
        self._capacity = capacity
        self._gone = gone
        self._lock = threading.Lock()

    def add(self, item_id: str, item) -> None:
        with self._lock:
            self._items[item_id] = item
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, item_id: str):
        with self._lock:
            found = self._items.get(item_id)
        if found is None:
            raise UserError(self._gone)
        return found


@dataclass
class FrozenFrame:
    freeze_id: str
    camera: str
    frame_index: int
    image: np.ndarray  # uint8[H, W, 3] RGB
    embedding: object | None = None  # the encoder's ImageEmbedding, after the first pick
    scene: object | None = None  # the simulator's Scene where the frame is the simulator's (its truth by kind)
    picks: Recent = field(default_factory=lambda: Recent(MAX_PICKS, "that preview is gone: click the object again"))
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while the embedding is computed

    def add_pick(self, pick: Pick) -> str:
        pick_id = secrets.token_hex(6)
        self.picks.add(pick_id, pick)
        return pick_id

    def pick(self, pick_id: str) -> Pick:
        return self.picks.get(pick_id)


class FrozenFrames:
    def __init__(self, capacity: int = MAX_FROZEN):
        self._frames = Recent(capacity, "that frozen frame is gone (too many since): freeze the live view again")

    def add(self, camera: str, frame_index: int, image: np.ndarray, scene: object | None = None) -> FrozenFrame:
        frozen = FrozenFrame(secrets.token_hex(8), camera, frame_index, image, scene=scene)
        self._frames.add(frozen.freeze_id, frozen)
        return frozen

    def get(self, freeze_id: str) -> FrozenFrame:
        return self._frames.get(freeze_id)
