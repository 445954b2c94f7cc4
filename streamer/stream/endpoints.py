"""ZeroMQ endpoints as the processor binds them: checked before ZeroMQ sees them, and told apart by reach.

ZeroMQ takes `tcp://127.0.0.1:99999` and binds port 34463 (the number wraps); here a port is 1-65535, 0
or `*` (any free port), and only the tcp, ipc and inproc transports are accepted.
"""

from __future__ import annotations

import ipaddress
import re

_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>[^:/]*)$")
_LOCAL_TRANSPORTS = ("ipc://", "inproc://")
_LOOPBACK_NAMES = {"localhost", "lo", "ip6-localhost"}


def check_endpoint(endpoint: str) -> str:
    """The endpoint, stripped; ValueError with one line when it is malformed or its port is out of range."""
    text = endpoint.strip()
    if text.startswith(_LOCAL_TRANSPORTS):
        if text.endswith("//"):
            raise ValueError(f"endpoint {text!r} names no path")
        return text
    if not text.startswith("tcp://"):
        raise ValueError(f"endpoint {text!r} must be tcp://HOST:PORT (or ipc://PATH, inproc://NAME)")
    match = _TCP.match(text)
    if match is None:
        raise ValueError(f"endpoint {text!r} must be tcp://HOST:PORT, e.g. tcp://127.0.0.1:5556")
    port = match["port"]
    if port != "*" and not (port.isdigit() and len(port) <= 5 and 0 <= int(port) <= 65535):
        raise ValueError(f"endpoint {text!r}: the port must be a number from 1 to 65535 (0 or * for any free port)")
    return text


def is_loopback(endpoint: str) -> bool:
    """True when only this machine can reach the endpoint: a tcp endpoint on a loopback address or name,
    or an ipc/inproc endpoint. A wildcard (`*`, 0.0.0.0) or any other address or interface is not."""
    text = endpoint.strip()
    if text.startswith(_LOCAL_TRANSPORTS):
        return True
    match = _TCP.match(text)
    if match is None:
        return False
    host = match["host"].strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
