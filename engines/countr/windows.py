"""Sliding windows over a model-scale image and the stitching of their densities, as CounTR's evaluation does it.

A model-scale image is 384 px high. Narrower than 384: padded symmetrically with zeros to 384. Wider: 384-wide
windows every 128 px, the last one flush with the right edge; where windows overlap, their densities are
averaged. In tiled mode (tiny exemplars) the image is 3 x 384 high and 3 x W wide: nine tiles of 384 x W, each
windowed as above, all windows of a frame in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.countr.preprocess import INPUT_SIZE

STRIDE = 128


def window_offsets(width: int, size: int = INPUT_SIZE, stride: int = STRIDE) -> list[int]:
    """Left edges of the windows covering [0, width) (width >= size): every `stride`, the last flush right."""
    if width <= size:
        return [0]
    offsets = list(range(0, width - size + 1, stride))
    if offsets[-1] + size < width:
        offsets.append(width - size)
    return offsets


def pad_width(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, int]:
    """float[C, H, W] -> (float[C, H, max(W, size)] zero-padded equally left and right, left padding)."""
    width = image.shape[-1]
    if width >= size:
        return image, 0
    left = (size - width) // 2
    return np.pad(image, ((0, 0), (0, 0), (left, size - width - left))), left


def split_windows(image: np.ndarray, offsets: list[int], size: int = INPUT_SIZE) -> np.ndarray:
    """float[C, H, W] -> float[n, C, H, size], one window per offset."""
    return np.stack([image[:, :, o : o + size] for o in offsets])


def stitch(densities: np.ndarray, offsets: list[int], width: int) -> np.ndarray:
    """float[n, H, size] window densities -> float32[H, width]; overlapping columns are averaged."""
    n, h, size = densities.shape
    total = np.zeros((h, width), np.float64)
    cover = np.zeros(width, np.float64)
    for density, o in zip(densities, offsets):
        total[:, o : o + size] += density
        cover[o : o + size] += 1
    if not np.all(cover > 0):
        raise ValueError("windows do not cover the image")
    return (total / cover).astype(np.float32)


@dataclass(frozen=True)
class WindowLayout:
    """Where a frame's windows come from: `tiles` x `tiles` tiles of 384 x `tile_width` px (model scale)."""

    tiles: int
    tile_width: int
    pad_left: int
    offsets: tuple[int, ...]

    @property
    def windows_per_tile(self) -> int:
        return len(self.offsets)

    @property
    def num_windows(self) -> int:
        return self.tiles * self.tiles * len(self.offsets)


def make_windows(image: np.ndarray, tiles: int, tile_width: int) -> tuple[np.ndarray, WindowLayout]:
    """float32[3, 384 * tiles, tile_width * tiles] -> (float32[N, 3, 384, 384] windows, their layout); tile-major."""
    expected = (INPUT_SIZE * tiles, tile_width * tiles)
    if image.shape[1:] != expected:
        raise ValueError(f"model-scale image is {image.shape[1:]}, expected {expected}")
    batches = []
    layout = None
    for row in range(tiles):
        for col in range(tiles):
            tile = image[:, row * INPUT_SIZE : (row + 1) * INPUT_SIZE, col * tile_width : (col + 1) * tile_width]
            padded, left = pad_width(tile)
            offsets = window_offsets(padded.shape[-1])
            layout = layout or WindowLayout(tiles, tile_width, left, tuple(offsets))
            batches.append(split_windows(padded, offsets))
    return np.ascontiguousarray(np.concatenate(batches), dtype=np.float32), layout


def assemble(densities: np.ndarray, layout: WindowLayout) -> np.ndarray:
    """float[N, 384, 384] window densities (make_windows order) -> float32[384 * tiles, tile_width * tiles]."""
    if len(densities) != layout.num_windows:
        raise ValueError(f"got {len(densities)} window densities, the layout has {layout.num_windows}")
    t, tw, per = layout.tiles, layout.tile_width, layout.windows_per_tile
    padded_width = max(tw, INPUT_SIZE)
    out = np.zeros((INPUT_SIZE * t, tw * t), np.float32)
    for index in range(t * t):
        row, col = divmod(index, t)
        tile = stitch(densities[index * per : (index + 1) * per], list(layout.offsets), padded_width)
        out[row * INPUT_SIZE : (row + 1) * INPUT_SIZE, col * tw : (col + 1) * tw] = tile[
            :, layout.pad_left : layout.pad_left + tw
        ]
    return out


def density_to_frame(density: np.ndarray, frame_hw: tuple[int, int], total: float) -> np.ndarray:
    """float[h, w] model-scale density -> float32[H, W], non-negative, summing to `total` (0 if total <= 0).

    Negative values (CounTR's head has no output activation) are clipped before resizing; the map is then
    rescaled so its sum is exactly `total`.
    """
    h, w = frame_hw
    clipped = np.maximum(np.asarray(density, np.float32), 0)
    if clipped.shape != (h, w):
        shrinking = h * w < clipped.shape[0] * clipped.shape[1]
        clipped = cv2.resize(clipped, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        clipped = np.maximum(clipped, 0)
    mass = float(clipped.sum(dtype=np.float64))
    if total <= 0 or mass <= 0:
        return np.zeros((h, w), np.float32)
    return (clipped * np.float32(total / mass)).astype(np.float32)
