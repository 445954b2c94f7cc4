"""Malformed control requests, drawn from a seeded generator: for the fuzz test in the suite and for
benchmarks/fuzz_control.py. Every request fits under four times `max_request_bytes` per frame, so ZeroMQ
delivers it and the server must answer it (larger frames are dropped by ZeroMQ and get no reply).
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height and holds a few bytes of pixel data: a bomb's header."""
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return _PNG_SIGNATURE + ihdr + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A real gray PNG of width x height zero pixels: small on the wire, width*height bytes decoded."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return _PNG_SIGNATURE + ihdr + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _nested(rng: np.random.Generator) -> bytes:
    depth = int(rng.integers(17, 5000))
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"cmd": "status", "a": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def _random_bytes(rng: np.random.Generator, n_max: int = 256) -> bytes:
    return rng.integers(0, 256, int(rng.integers(0, n_max)), dtype=np.uint8).tobytes()


def _mutated(rng: np.random.Generator, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        if not buffer:
            break
        i = int(rng.integers(0, len(buffer)))
        choice = rng.random()
        if choice < 0.4:
            buffer[i] = int(rng.integers(0, 256))
        elif choice < 0.7:
            del buffer[i]
        else:
            buffer.insert(i, int(rng.integers(0, 256)))
    return bytes(buffer)


_JSON_VALUES = [
    b"null", b"true", b"1", b"-1e999999", b"9" * 4000, b'"status"', b"[]", b"{}", b'[{"cmd": "status"}]',
    b'{"cmd": null}', b'{"cmd": 1}', b'{"cmd": ["status"]}', b'{"cmd": {"cmd": "status"}}', b'{"CMD": "status"}',
    b'\xef\xbb\xbf{"cmd": "status"}', b'{"cmd": "status"', b'{"cmd": "\xff\xfe"}', b'{"cmd": "st\\u0000atus"}',
    b'{"cmd": "' + "\u2603".encode() * 500 + b'"}', b'{"cmd": "pause", "cmd": 3}', b"NaN", b"Infinity",
]


def _names_a_command(data: bytes) -> bool:
    try:
        request = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(request, dict) and request.get("cmd") in ("status", "pause", "resume", "set_support")


def malformed_request(rng: np.random.Generator, max_request_bytes: int) -> list[bytes]:
    """One malformed request (a list of frames) that must get an error reply (or, rarely, a status reply).
    No frame is longer than ZeroMQ's hard limit of four times `max_request_bytes`."""
    hard_limit = 4 * max_request_bytes
    return [frame[:hard_limit] for frame in _draw(rng, max_request_bytes)]


def _draw(rng: np.random.Generator, max_request_bytes: int) -> list[bytes]:
    kind = int(rng.integers(0, 12))
    if kind == 0:
        return [_random_bytes(rng)]
    if kind == 1:
        return [_nested(rng)]
    if kind == 2:
        return [_JSON_VALUES[int(rng.integers(0, len(_JSON_VALUES)))]]
    if kind == 3:  # an unknown command, sometimes long or not ASCII
        name = "".join(chr(int(c)) for c in rng.integers(32, 0x2FFF, int(rng.integers(1, 300))))
        return [json.dumps({"cmd": name}).encode()]
    if kind == 4:  # a known command with binary frames it does not take
        cmd = ["status", "pause", "resume"][int(rng.integers(0, 3))]
        return [json.dumps({"cmd": cmd}).encode()] + [_random_bytes(rng, 64) for _ in range(int(rng.integers(1, 3)))]
    if kind == 5:  # set_support with too few frames
        return [b'{"cmd": "set_support"}'] + [_random_bytes(rng, 64) for _ in range(int(rng.integers(0, 2)))]
    if kind == 6:  # set_support with images that are not images, or are bombs, or are truncated
        size = int(rng.integers(20_000, 200_000))
        choices = [_random_bytes(rng, 512), png_header_only(size, size), png_header_only(0, 0),
                   png_header_only(2**31 - 1, 1), _PNG_SIGNATURE + _random_bytes(rng, 64), b""]
        pick = lambda: choices[int(rng.integers(0, len(choices)))]  # noqa: E731
        return [b'{"cmd": "set_support"}', pick(), pick()]
    if kind == 7:  # too many frames
        return [b'{"cmd": "status"}'] + [b"x"] * int(rng.integers(3, 40))
    if kind == 8:  # over the size limit in all, each frame under ZeroMQ's hard limit
        half = max_request_bytes // 2 + 1
        return [b'{"cmd": "set_support"}', b"\0" * half, b"\0" * half]
    if kind == 9:  # a byte-level mutation of a valid request that is no longer valid JSON with a cmd
        base = [b'{"cmd": "status"}', b'{"cmd": "pause"}', b'{"cmd": "set_support"}'][int(rng.integers(0, 3))]
        mutated = _mutated(rng, base)
        return [b"{" if _names_a_command(mutated) else mutated]
    if kind == 10:  # empty frames
        return [b""] * int(rng.integers(1, 4))
    return [b'{"cmd": "status", "x": ' + b"1" * int(rng.integers(1, 60_000)) + b"}"[: int(rng.integers(0, 2))]]
