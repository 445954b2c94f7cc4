"""Keep credentials out of logs and errors: camera URLs often carry a user and password."""

from __future__ import annotations

import re

# scheme://user:password@host...  (the greedy part stops at the last '@' before the path)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s]*)@")
# ?user=admin&password=secret style query parameters some cameras use.
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:password|passwd|pwd|pass|token|key|secret|auth|user|username)=)(?P<value>[^&#\s]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """The URI (or any text containing URIs) with user info and secret query values replaced by '***'.

    'rtsp://admin:pw@10.0.0.5:554/s?token=x' -> 'rtsp://***@10.0.0.5:554/s?token=***'
    """
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}***", text)
