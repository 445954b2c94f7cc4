"""SAM's input and output geometry in numpy: resize-longest-side, normalise + pad, point coordinates, masks.

The resize uses Pillow's bilinear filter, as segment_anything.SamPredictor does, so that embeddings match the
reference bit for bit on the same weights.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from engines.sam.spec import IMAGE_SIZE, LOW_RES, PATCH_SIZE, PIXEL_MEAN, PIXEL_STD
from engines.errors import UserError

_MEAN = np.asarray(PIXEL_MEAN, np.float32)
_STD = np.asarray(PIXEL_STD, np.float32)


def resized_hw(frame_hw: tuple[int, int], long_side: int = IMAGE_SIZE) -> tuple[int, int]:
    """(H, W) -> the (h, w) the longest side is scaled to `long_side`, rounded half up (as segment-anything)."""
    h, w = frame_hw
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def check_image(image_rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(image_rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise UserError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {list(image.shape)}")
    if min(image.shape[:2]) < 1:
        raise UserError("the image is empty")
    return image


def preprocess(image_rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8[H, W, 3] -> (float32[1, 3, 1024, 1024] normalised and zero-padded at bottom/right, resized (h, w))."""
    image = check_image(image_rgb)
    h, w = resized_hw(image.shape[:2])
    if (h, w) != image.shape[:2]:
        image = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    out = np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    out[0, :, :h, :w] = ((image.astype(np.float32) - _MEAN) / _STD).transpose(2, 0, 1)
    return out, (h, w)


def embedding_valid_hw(input_hw: tuple[int, int]) -> tuple[int, int]:
    """Cells of the 64 x 64 embedding grid that cover the resized image (partly covered cells included)."""
    return -(-input_hw[0] // PATCH_SIZE), -(-input_hw[1] // PATCH_SIZE)


def lowres_valid_hw(input_hw: tuple[int, int]) -> tuple[float, float]:
    """The part of the 256 x 256 logit grid that covers the frame (fractional: resized size / 4)."""
    factor = IMAGE_SIZE / LOW_RES
    return input_hw[0] / factor, input_hw[1] / factor


def lowres_valid_cells(input_hw: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of the 256 x 256 logit grid that cover the frame (partly covered cells included)."""
    factor = IMAGE_SIZE // LOW_RES
    return -(-input_hw[0] // factor), -(-input_hw[1] // factor)


def points_to_input(points_xy: np.ndarray, frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> np.ndarray:
    """float[N, 2] frame pixels (x, y) -> float32[N, 2] in the resized 1024 input (ResizeLongestSide.apply_coords)."""
    points = np.asarray(points_xy, np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise UserError("point prompts must be finite numbers")
    scale = np.asarray([input_hw[1] / frame_hw[1], input_hw[0] / frame_hw[0]])
    return (points * scale).astype(np.float32)


def prompt_batch(coords_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N single positive points -> (float32[N, 2, 2] coords, float32[N, 2] labels), each point followed by the
    (0, 0) padding point with label -1 that SamPredictor appends when no box is given."""
    n = len(coords_input)
    coords = np.zeros((n, 2, 2), np.float32)
    coords[:, 0] = coords_input
    labels = np.tile(np.asarray([[1.0, -1.0]], np.float32), (n, 1))
    return coords, labels


def upscale_logits(
    low_res: np.ndarray, input_hw: tuple[int, int], frame_hw: tuple[int, int]
) -> np.ndarray:
    """float32[..., 256, 256] -> float32[..., H, W], as Sam.postprocess_masks: bilinear to 1024 x 1024, crop the
    padding, bilinear to the frame (half-pixel centres, no antialiasing). One mask at a time to bound memory."""
    lead = low_res.shape[:-2]
    flat = low_res.reshape(-1, LOW_RES, LOW_RES)
    h, w = frame_hw
    out = np.empty((len(flat), h, w), np.float32)
    for i, mask in enumerate(flat):
        big = cv2.resize(mask, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
        big = np.ascontiguousarray(big[: input_hw[0], : input_hw[1]])
        out[i] = cv2.resize(big, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(*lead, h, w)
