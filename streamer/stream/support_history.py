"""The supports a processor has used, newest last, so that a replaced support can be put back (Undo).

Kept packed, at a bounded cost: a support image of 50 megapixels is 150 MB as pixels and its mask 50 MB, and
a history of 8 of them per camera held gigabytes. Each record holds the image losslessly compressed (PNG at
a fast level: Undo must give back the very same pixels, so the same support id and cached prototype), the
mask as bits (1/8 of a byte per pixel), and a small preview for the console's thumbnail. The records of one
camera together stay within a byte budget (`stream.console.support_history_bytes`, default 32 MiB): the
oldest are forgotten first; the newest (the support in force) is always kept, whatever its size.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_HISTORY_BYTES = 32 * 1024 * 1024
PREVIEW_PX = 240  # the longer side of the preview (the product's crop) kept for the console's thumbnail


@dataclass(frozen=True)
class PackedSupport:
    """A support image and mask at a fraction of their size in memory (see the module's docstring)."""

    png: bytes  # the image, RGB, lossless
    mask_bits: bytes  # np.packbits of the mask, row-major
    shape: tuple[int, int]  # (H, W)
    preview: np.ndarray  # uint8[h, w, 3] RGB, the longer side at most PREVIEW_PX
    preview_mask: np.ndarray  # bool[h, w]

    @property
    def nbytes(self) -> int:
        return len(self.png) + len(self.mask_bits) + self.preview.nbytes + self.preview_mask.nbytes


def support_crop(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The support's product and a margin around it (a quarter of its size): the whole support frame showed the
    belt more than the product (issue 25). -> (image crop, mask crop); the whole image where the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return image, mask
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    margin = max(8, (max(y1 - y0, x1 - x0)) // 4)
    y0, x0 = max(y0 - margin, 0), max(x0 - margin, 0)
    y1, x1 = min(y1 + margin, mask.shape[0]), min(x1 + margin, mask.shape[1])
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def pack(image: np.ndarray, mask: np.ndarray) -> PackedSupport:
    """(uint8[H, W, 3] RGB, bool[H, W]) -> its packed form (costs about a second for 50 megapixels, so callers
    pack outside the pipeline's thread)."""
    # The RGB bytes are stored as they are (PNG taken as BGR, decoded back unconverted): no reordered copy of
    # a large image is made.
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding of the support failed")
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    crop, crop_mask = support_crop(image, mask)
    ch, cw = crop_mask.shape
    scale = min(PREVIEW_PX / max(ch, cw), 1.0)
    size = (max(int(cw * scale), 1), max(int(ch * scale), 1))
    preview = cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if scale < 1 else crop.copy()
    preview_mask = cv2.resize(crop_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return PackedSupport(png.tobytes(), np.packbits(mask).tobytes(), (h, w), preview, preview_mask)


@dataclass(frozen=True)
class SupportRecord:
    packed: PackedSupport
    support_id: str

    @property
    def image(self) -> np.ndarray:
        """uint8[H, W, 3] RGB, decoded on each call (for Undo)."""
        return cv2.imdecode(np.frombuffer(self.packed.png, np.uint8), cv2.IMREAD_COLOR)  # RGB as stored

    @property
    def mask(self) -> np.ndarray:
        """bool[H, W], unpacked on each call."""
        h, w = self.packed.shape
        bits = np.unpackbits(np.frombuffer(self.packed.mask_bits, np.uint8), count=h * w)
        return bits.reshape(h, w).astype(bool)


class SupportHistory:
    """Thread-safe and bounded: at most `depth` records and `max_bytes` (packed) in all; the oldest go first."""

    def __init__(self, depth: int = 8, max_bytes: int = DEFAULT_HISTORY_BYTES):
        self._records: deque[SupportRecord] = deque(maxlen=depth)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def push(self, image: np.ndarray | None, mask: np.ndarray | None, support_id: str,
             packed: PackedSupport | None = None) -> None:
        """Record a support; `packed` where the caller packed it already (then image and mask are not used)."""
        with self._lock:
            if self._records and self._records[-1].support_id == support_id:
                return  # the same support again is not a step to undo
        record = SupportRecord(packed or pack(image, mask), support_id)
        with self._lock:
            self._records.append(record)
            while len(self._records) > 1 and self.nbytes_locked() > self._max_bytes:
                self._records.popleft()

    def nbytes_locked(self) -> int:
        return sum(r.packed.nbytes for r in self._records)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self.nbytes_locked()

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
