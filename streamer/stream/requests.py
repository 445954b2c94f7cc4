"""Control requests from the network, checked within fixed bounds before anything parses or handles them.

A request is a list of ZeroMQ frames: frame 0 a JSON object with a "cmd" string, then the command's binary
frames. `parse_request` checks, in this order and before any JSON is parsed: the number of frames, the
total size, the size of the JSON frame and the nesting depth of its brackets; then it parses. Each failure
is a UserError with one line, which the control server sends back as an error reply.
"""

from __future__ import annotations

import json

from streamer.errors import UserError

MAX_FRAMES = 3  # the JSON frame and at most two binary frames (set_support's image and mask)
MAX_JSON_BYTES = 64 * 1024  # a command's JSON is a few dozen bytes; the images travel in their own frames
MAX_JSON_DEPTH = 16

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


def json_depth_exceeds(data: bytes, limit: int) -> bool:
    """True when the brackets of `data` (read as JSON text; strings skipped) nest deeper than `limit`.

    A linear scan that needs no parser, so a hostile nesting never reaches the recursive JSON decoder.
    """
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
    return False


def parse_request(frames: list[bytes], max_request_bytes: int) -> tuple[dict, list[bytes]]:
    """[JSON, *binary frames] -> (the request object, the binary frames); UserError with one line when the
    request is out of bounds or malformed."""
    if not frames:
        raise UserError("empty request: send a JSON object such as {\"cmd\": \"status\"}")
    if len(frames) > MAX_FRAMES:
        raise UserError(f"request of {len(frames)} frames; at most {MAX_FRAMES} (JSON, then up to 2 binary frames)")
    size = sum(len(f) for f in frames)
    if size > max_request_bytes:
        raise UserError(f"request of {size} bytes exceeds the limit of {max_request_bytes}")
    head = bytes(frames[0])
    if len(head) > MAX_JSON_BYTES:
        raise UserError(f"the JSON frame has {len(head)} bytes; at most {MAX_JSON_BYTES}")
    if json_depth_exceeds(head, MAX_JSON_DEPTH):
        raise UserError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError('the first frame must be a JSON object such as {"cmd": "status"}') from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise UserError('the request must be a JSON object with a "cmd" string, e.g. {"cmd": "status"}')
    return request, list(frames[1:])
