"""A control request as a client sends it: a REQ socket, the JSON frame and any binary frames, one reply."""

from __future__ import annotations

import json

import zmq


def ask(endpoint: str, request: dict, *frames: bytes, timeout_s: float = 120.0) -> dict:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart([json.dumps(request).encode(), *frames])
        assert sock.poll(int(timeout_s * 1000)), f"no reply to {request} within {timeout_s} s"
        return json.loads(sock.recv())
    finally:
        sock.close(0)
