"""Deep images (16-bit and float samples) that are small on the wire and large decoded: for the tests and for
benchmarks/hostile_cases.py. `real=True` makes files that decode in full (zeros, compressed); otherwise only
the header is right (what a refusal from the header needs; decoding them would fail or give little)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

from tests.peers.control_fuzz import _PNG_SIGNATURE, _png_chunk

_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _zeros_deflated(total: int, row: bytes | None = None, rows: int = 0) -> bytes:
    compressor = zlib.compressobj(9)
    if row is not None:
        return b"".join(compressor.compress(row) for _ in range(rows)) + compressor.flush()
    chunk = b"\0" * (1 << 20)
    out = [compressor.compress(chunk) for _ in range(total >> 20)]
    return b"".join(out) + compressor.compress(b"\0" * (total & ((1 << 20) - 1))) + compressor.flush()


def deep_png(width: int, height: int, depth: int = 16, colour: int = 6, real: bool = False) -> bytes:
    """A PNG of width x height, `depth` bits per sample, colour type `colour` (6: RGBA, 2: RGB, 0: grey)."""
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    row = b"\0" * (1 + width * _PNG_CHANNELS[colour] * depth // 8)
    body = _zeros_deflated(0, row, height) if real else zlib.compress(b"\0" * 64)
    return _PNG_SIGNATURE + ihdr + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def deep_tiff(width: int, height: int, samples: int = 3, bits: int = 32, float_samples: bool = True,
              real: bool = False) -> bytes:
    """A little-endian TIFF, one deflated strip of zeros (all of them with `real`, else a few)."""
    size = width * height * samples * bits // 8
    strip = _zeros_deflated(size) if real else zlib.compress(b"\0" * 64)
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, samples, None), (259, 3, 1, 8),
               (262, 3, 1, 2 if samples >= 3 else 1), (273, 4, 1, None), (277, 3, 1, samples),
               (278, 4, 1, height), (279, 4, 1, len(strip)), (284, 3, 1, 1),
               (339, 3, samples, None)]
    ifd_at = 8
    extra_at = ifd_at + 2 + 12 * len(entries) + 4
    bits_at, format_at = extra_at, extra_at + 2 * samples
    strip_at = format_at + 2 * samples
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits if samples <= 2 else bits_at
        elif tag == 339:
            code = 3 if float_samples else 1
            value = code if samples <= 2 else format_at
        elif tag == 273:
            value = strip_at
        packed = struct.pack("<HHI", tag, kind, count)
        if kind == 3 and count <= 2 and tag in (258, 339):
            packed += struct.pack("<HH", value, value if count == 2 else 0)
        elif kind == 3 and count == 1:
            packed += struct.pack("<HH", value, 0)
        else:
            packed += struct.pack("<I", value)
        ifd += packed
    ifd += struct.pack("<I", 0)
    code = 3 if float_samples else 1
    shorts = "<" + "H" * samples
    extra = struct.pack(shorts, *([bits] * samples)) + struct.pack(shorts, *([code] * samples))
    return b"II*\0" + struct.pack("<I", ifd_at) + ifd + extra + strip


def jpeg_claiming(width: int, height: int, mode: str = "CMYK") -> bytes:
    """A real 16x16 JPEG (CMYK: 4 channels) whose frame header claims width x height."""
    buffer = io.BytesIO()
    Image.new(mode, (16, 16)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """A real 16x16 lossless RGBA WebP (VP8L) whose header claims width x height (at most 16384 each)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (1, 2, 3, 4)).save(buffer, "WEBP", lossless=True)
    data = bytearray(buffer.getvalue())
    at = data.index(b"VP8L") + 8 + 1  # chunk header, then the 0x2f signature byte
    (bits,) = struct.unpack("<I", data[at:at + 4])
    bits = (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    data[at:at + 4] = struct.pack("<I", bits)
    return bytes(data)


def plain_png(width: int, height: int) -> bytes:
    """A real 8-bit RGB PNG of width x height with some structure (compresses well: a gradient)."""
    row = np.linspace(0, 255, width, dtype=np.uint8)
    image = np.repeat(np.repeat(row[None, :, None], height, axis=0), 3, axis=2)
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
