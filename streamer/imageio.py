"""Reading support images, masks and query images with one clear error per bad input."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from streamer.errors import UserError
from streamer.regular_file import read_regular

# The largest image decoded from outside (files, control requests, uploads): 50 megapixels is a 8660x5773 image,
# beyond any camera of a line, and decodes to 150 MB (8-bit RGB).
DEFAULT_MAX_PIXELS = 50_000_000
# Image files larger than this are refused before they are read.
MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024
# Formats whose header Pillow reads for the size check: those OpenCV decodes, and no others (fewer parsers
# see untrusted bytes). PPM covers PBM, PGM, PPM and PNM; BMP covers DIB.
_HEADER_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "JPEG2000", "SUN", "GIF")


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA, 8 or 16 bit, float) -> uint8[H, W, 3] RGB (OpenCV decodes as BGR)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.asarray(image, dtype=np.float32)
        peak = float(image.max(initial=0.0))
        scale = 255.0 if peak <= 1.0 else 255.0 / max(peak, 1e-12)
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_raw(path: Path, what: str) -> np.ndarray:
    # Only a regular file is read (a FIFO or a device would block or never end), and only up to the limit.
    data = read_regular(Path(path), what, MAX_IMAGE_FILE_BYTES)
    return decode_image_bytes(data, what, source=str(path))


def read_image(path: Path | str, what: str = "image") -> np.ndarray:
    """-> uint8[H, W, 3] RGB; grayscale, 16-bit and RGBA files are converted."""
    return to_rgb8(_read_raw(Path(path), what))


def read_mask(path: Path | str, what: str = "mask") -> np.ndarray:
    """-> bool[H, W]: non-zero pixels (any channel; the alpha channel where the colour is empty) are the object."""
    return mask_from_raw(_read_raw(Path(path), what))


def image_size_from_header(data: bytes | np.ndarray) -> tuple[str, int] | None:
    """An encoded image's size read from its header alone (Pillow identifies the format and reads no pixel
    data) -> (the size in words, e.g. "640x480", the pixel count), or None when no image format is recognised."""
    with warnings.catch_warnings():
        # Pillow warns about (and refuses) very large images on its own; the caller's lower limit decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(memoryview(data)), formats=_HEADER_FORMATS) as image:
                width, height = image.size
                return f"{width}x{height}", width * height
        except Image.DecompressionBombError:
            beyond = 2 * Image.MAX_IMAGE_PIXELS
            return f"more than {beyond}", beyond + 1
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
            return None


def decode_image_bytes(
    data: bytes | np.ndarray, what: str, source: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ...) -> the raw decoded array as OpenCV gives it: [H, W] or [H, W, C]
    in BGR(A) order, uint8 or uint16. The one decoding path for files and for bytes from a socket.

    The pixel count is read from the header before anything is decoded: an image beyond `max_pixels` (a
    decompression bomb: a small file that decodes to gigabytes) is refused at once, in bounded memory.
    Raises UserError naming `what` (and `source`, e.g. the file, where given) when it is not an image or too large.
    """
    buffer = np.frombuffer(data, np.uint8)
    where = f": {source}" if source else f" ({buffer.size} bytes)"
    header = image_size_from_header(buffer) if buffer.size else None
    if header is None:
        raise UserError(f"{what} is not a readable image{where}")
    words, pixels = header
    if pixels > max_pixels:
        raise UserError(f"{what} of {words} pixels exceeds the limit of {max_pixels} pixels{where}")
    raw = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UserError(f"{what} is not a readable image{where}")
    if raw.shape[0] * raw.shape[1] > max_pixels:  # the decoder and the header disagreed
        raise UserError(f"{what} decodes to more than {max_pixels} pixels{where}")
    return raw


def mask_from_raw(raw: np.ndarray) -> np.ndarray:
    """A decoded mask image -> bool[H, W]: non-zero pixels in any colour channel are the object; an RGBA
    mask whose colour channels are all zero is read from its alpha channel instead (so an opaque alpha
    under a painted mask does not make the whole image the object)."""
    if raw.ndim == 3:
        colour = raw[:, :, :3].max(axis=2) if raw.shape[2] >= 3 else raw[:, :, 0]
        if raw.shape[2] == 4 and not colour.any():
            colour = raw[:, :, 3]
        raw = colour
    return raw > 0


def write_image(path: Path, image_rgb: np.ndarray, quality: int = 90) -> None:
    """Encoded in memory, then written with Python's own file calls, so a failure names its cause (a full
    disk, a missing permission), which cv2.imwrite's bare False does not."""
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR) if image_rgb.ndim == 3 else image_rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(path.suffix or ".png", bgr, params)
    if not ok:
        raise UserError(f"cannot write {path}: no image encoder for {path.suffix or 'this name'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(encoded.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
