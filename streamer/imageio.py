"""Reading support images, masks and query images with one clear error per bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from streamer.errors import UserError
from streamer.image_header import read_header
from streamer.regular_file import read_regular

# The largest image decoded from outside (files, control requests, uploads): 50 megapixels is a 8660x5773 image,
# beyond any camera of a line, and decodes to 150 MB (8-bit RGB).
DEFAULT_MAX_PIXELS = 50_000_000
# Image files larger than this are refused before they are read.
MAX_IMAGE_FILE_BYTES = 512 * 1024 * 1024


def to_rgb8(image: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Any decoded image (gray, BGR, BGRA, 8 or 16 bit, float) -> uint8[H, W, 3] RGB (OpenCV decodes as BGR).

    in_place: `image` is the caller's to give up (just decoded): an 8-bit BGR image is converted in its own
    memory, so no second full-size copy is ever held (the peak of a large upload)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        if not (in_place and image.dtype == np.float32 and image.flags.writeable):
            image = image.astype(np.float32)  # a copy of our own, scaled in place below
        peak = float(image.max(initial=0.0))
        scale = 255.0 if peak <= 1.0 else 255.0 / max(peak, 1e-12)
        np.multiply(image, scale, out=image)
        image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if in_place and image.flags.writeable and image.flags.c_contiguous:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_raw(path: Path, what: str) -> np.ndarray:
    # Only a regular file is read (a FIFO or a device would block or never end), and only up to the limit.
    data = read_regular(Path(path), what, MAX_IMAGE_FILE_BYTES)
    return decode_image_bytes(data, what, source=str(path))


def read_image(path: Path | str, what: str = "image") -> np.ndarray:
    """-> uint8[H, W, 3] RGB; grayscale, 16-bit and RGBA files are converted."""
    return to_rgb8(_read_raw(Path(path), what), in_place=True)


def read_mask(path: Path | str, what: str = "mask") -> np.ndarray:
    """-> bool[H, W]: non-zero pixels (any channel; the alpha channel where the colour is empty) are the object."""
    return mask_from_raw(_read_raw(Path(path), what))


def decode_image_bytes(
    data: bytes | np.ndarray, what: str, source: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ...) -> the raw decoded array as OpenCV gives it: [H, W] or [H, W, C]
    in BGR(A) order, uint8, uint16 or float. The one decoding path for files and for bytes from a socket.

    The size is read from the header before anything is decoded: an image beyond `max_pixels`, or whose decoded
    array (width x height x channels x bytes per sample) would exceed `max_bytes` (default: 3 bytes per allowed
    pixel, an 8-bit RGB image at the pixel limit), is refused at once, in bounded memory: decompression bombs
    (a small file that decodes to gigabytes) and deep images (16-bit, float) alike.
    Raises UserError naming `what` (and `source`, e.g. the file, where given) when it is not an image or too large.
    """
    max_bytes = 3 * max_pixels if max_bytes is None else max_bytes
    buffer = np.frombuffer(data, np.uint8)
    where = f": {source}" if source else f" ({buffer.size} bytes)"
    header = read_header(buffer) if buffer.size else None
    if header is None:
        raise UserError(f"{what} is not a readable image{where}")
    if header.pixels > max_pixels:
        raise UserError(f"{what} of {header.size_words()} pixels exceeds the limit of {max_pixels} pixels{where}")
    if header.decoded_bytes > max_bytes:
        raise UserError(f"{what} ({header.describe()}) would decode to {header.decoded_bytes} bytes, beyond the "
                        f"limit of {max_bytes}{where}")
    raw = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise UserError(f"{what} is not a readable image{where}")
    if raw.shape[0] * raw.shape[1] > max_pixels or raw.nbytes > max_bytes:  # the decoder and the header disagreed
        raise UserError(f"{what} decodes to more than its header said{where}")
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


# OpenCV's JPEG encoder's names (`*.jpeg;*.jpg;*.jpe`): each is written at the quality asked for.
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")


def write_image(path: Path, image_rgb: np.ndarray, quality: int = 90) -> None:
    """Encoded in memory, then written with Python's own file calls, so a failure names its cause (a full
    disk, a missing permission), which cv2.imwrite's bare False does not."""
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR) if image_rgb.ndim == 3 else image_rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in _JPEG_SUFFIXES else []
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", bgr, params)
    except cv2.error:  # OpenCV (5.1 here) raises, rather than answering False, for a suffix it cannot encode
        ok = False
    if not ok:
        raise UserError(f"cannot write {path}: no image encoder for {path.suffix or 'this name'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(encoded.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
