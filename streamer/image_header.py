"""What an encoded image will cost once decoded, read from its header alone (no pixel data is touched).

Pixels alone are not the cost: a 7000x7000 16-bit RGBA PNG is 49 megapixels but 392 MB decoded, a float32 TIFF
four times an 8-bit one. So the decoded size is width x height x channels x bytes per sample, with the
channels and sample size OpenCV's `imdecode(IMREAD_UNCHANGED)` will produce (its output is what is allocated).

PNG, TIFF and WebP headers are parsed here (Pillow reports a 16-bit RGBA PNG as 8-bit "RGBA", cannot identify
float RGB TIFFs, and sets up a whole WebP decoder to read a size); the other formats' size and mode come from
Pillow's header parser.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Formats whose header is read: those OpenCV decodes, and no others (fewer parsers see untrusted bytes).
# PPM covers PBM, PGM, PPM and PNM; BMP covers DIB.
_PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "PPM", "JPEG2000", "SUN", "GIF")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels OpenCV delivers (palette and grey+alpha are expanded to BGR(A)).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}
# Pillow mode -> (channels, bytes per sample) as OpenCV will decode it.
_MODES = {"1": (1, 1), "L": (1, 1), "P": (4, 1), "LA": (4, 1), "RGB": (3, 1), "YCbCr": (3, 1), "RGBA": (4, 1),
          "CMYK": (4, 1), "I;16": (1, 2), "I;16B": (1, 2), "I;16L": (1, 2), "I": (1, 4), "F": (1, 4)}


@dataclass(frozen=True)
class Header:
    format: str
    width: int
    height: int
    channels: int
    sample_bytes: int
    float_samples: bool = False
    exact: bool = True  # False: Pillow only said "more than width x height pixels"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        return self.pixels * self.channels * self.sample_bytes

    def size_words(self) -> str:
        return f"{self.width}x{self.height}" if self.exact else f"more than {self.pixels}"

    def describe(self) -> str:
        depth = f"{self.sample_bytes * 8}-bit {'float' if self.float_samples else 'integer'}"
        return f"{self.size_words()}, {self.channels} channel(s) of {depth} samples"


def read_header(data: bytes | memoryview) -> Header | None:
    """The header of an encoded image, or None when no supported format is recognised."""
    view = memoryview(data)
    if bytes(view[:8]) == _PNG_SIGNATURE:
        return _png(view)
    if bytes(view[:4]) in (b"II*\0", b"MM\0*"):
        return _tiff(view) or _pillow(view)
    if bytes(view[:4]) == b"RIFF" and bytes(view[8:12]) == b"WEBP":
        return _webp(view)
    return _pillow(view)


def _webp(view: memoryview) -> Header | None:
    """The first chunk of a WebP (Pillow's header reading sets up libwebp's decoder: 0.1 s for a large one)."""
    kind, chunk = bytes(view[12:16]), bytes(view[20:30])
    if len(chunk) < 10:
        return None
    if kind == b"VP8X":  # extended: the canvas size, and whether there is alpha
        width = 1 + int.from_bytes(chunk[4:7], "little")
        height = 1 + int.from_bytes(chunk[7:10], "little")
        return Header("WEBP", width, height, 4 if chunk[0] & 0x10 else 3, 1)
    if kind == b"VP8L" and chunk[0] == 0x2F:  # lossless
        bits = int.from_bytes(chunk[1:5], "little")
        return Header("WEBP", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), 4 if bits >> 28 & 1 else 3, 1)
    if kind == b"VP8 " and chunk[3:6] == b"\x9d\x01\x2a":  # lossy: no alpha
        width, height = struct.unpack("<HH", chunk[6:10])
        return Header("WEBP", width & 0x3FFF, height & 0x3FFF, 3, 1)
    return None


def _png(view: memoryview) -> Header | None:
    if len(view) < 33 or bytes(view[12:16]) != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", view[16:26])
    if colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        return None
    channels = _PNG_CHANNELS[colour]
    if channels < 4 and b"tRNS" in bytes(view[33:65536]):  # a transparent colour becomes an alpha channel
        channels = 4
    return Header("PNG", width, height, channels, 2 if depth == 16 else 1)


def _tiff(view: memoryview) -> Header | None:
    """The first image (IFD) of a classic TIFF: the one OpenCV decodes. None when it cannot be parsed."""
    try:
        order = "<" if bytes(view[:2]) == b"II" else ">"
        (offset,) = struct.unpack(order + "I", view[4:8])
        (count,) = struct.unpack(order + "H", view[offset:offset + 2])
        tags: dict[int, int] = {}
        sizes = {1: 1, 3: 2, 4: 4, 16: 8}  # BYTE, SHORT, LONG, LONG8
        for i in range(min(count, 512)):
            entry = view[offset + 2 + 12 * i:offset + 14 + 12 * i]
            tag, kind, n = struct.unpack(order + "HHI", entry[:8])
            if tag not in (256, 257, 258, 262, 277, 339) or kind not in sizes:
                continue
            size = sizes[kind]
            where = entry[8:12] if n * size <= 4 else view[struct.unpack(order + "I", entry[8:12])[0]:][:n * size]
            code = {1: "B", 3: "H", 4: "I", 16: "Q"}[kind]
            values = struct.unpack(order + code * min(n, 16), bytes(where[:min(n, 16) * size]))
            tags[tag] = max(values) if tag == 258 else values[0]  # the widest sample decides
    except (struct.error, ValueError, IndexError):
        return None
    if 256 not in tags or 257 not in tags:
        return None
    samples = max(tags.get(277, 1), 3 if tags.get(262) in (2, 3, 6) else 1)  # RGB, palette, YCbCr -> 3+
    sample_bytes = max((tags.get(258, 1) + 7) // 8, 1)
    return Header("TIFF", tags[256], tags[257], samples, sample_bytes, float_samples=tags.get(339) == 3)


def _pillow(view: memoryview) -> Header | None:
    with warnings.catch_warnings():
        # Pillow refuses very large images on its own; ours is the lower limit, and its error has no size.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(view), formats=_PILLOW_FORMATS) as image:
                width, height = image.size
                channels, sample_bytes = _MODES.get(image.mode, (max(len(image.getbands()), 3), 4))
                if image.format == "JPEG2000":
                    sample_bytes = max(sample_bytes, 2)  # OpenCV decodes 12- and 16-bit codestreams as 16-bit
                return Header(image.format or "image", width, height, channels, sample_bytes,
                              float_samples=image.mode == "F")
        except Image.DecompressionBombError:
            beyond = 2 * Image.MAX_IMAGE_PIXELS  # Pillow's own bound: more than this many pixels
            return Header("image", beyond + 1, 1, 1, 1, exact=False)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
            return None
