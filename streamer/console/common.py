"""What the console's modules share: the static folder, the busy error and the bounded JSON reader.

Kept apart so that app, routes and picking_routes import it and not each other (no import circle).
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request

from streamer.errors import UserError

STATIC = Path(__file__).parent / "static"
MAX_JSON_BYTES = 64 * 1024


class SupportBusy(UserError):
    """Another support change is under way."""


async def read_json(request: Request, limit: int = MAX_JSON_BYTES) -> dict:
    """The request's JSON object, read up to `limit` bytes (a larger body is refused before it is parsed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UserError(f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UserError(f"request body over {limit} bytes")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UserError("the request body must be a JSON object") from None
    if not isinstance(value, dict):
        raise UserError("the request body must be a JSON object")
    return value
