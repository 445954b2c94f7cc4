"""Helpers for the console's tests: HTTP calls to 127.0.0.1 and where the simulator's objects are. No tests here."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
from scipy import ndimage

from streamer.simulator import ConveyorSimulator

HEADER = {"X-Persense-Console": "1"}


def http(url: str, body: bytes | dict | None = None, headers: dict | None = None, method: str | None = None,
         timeout: float = 30.0) -> tuple[int, dict, bytes]:
    """-> (status, headers, body); JSON dict bodies are sent as JSON with the console header."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(url: str, payload: dict | None = None, **kwargs) -> tuple[int, dict]:
    status, _, data = http(url, payload or {}, headers={**HEADER, **kwargs.pop("headers", {})}, method="POST",
                           **kwargs)
    return status, json.loads(data)


def multipart(files: dict[str, bytes], fields: dict[str, str] | None = None) -> tuple[bytes, dict]:
    """A multipart/form-data body of `files` (and plain `fields`) -> (body, headers with the console header)."""
    boundary = "testboundary1234"
    body = b""
    for name, value in (fields or {}).items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, data in files.items():
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {**HEADER, "Content-Type": f"multipart/form-data; boundary={boundary}"}


def get_json(url: str, **kwargs) -> tuple[int, dict]:
    status, _, data = http(url, **kwargs)
    return status, json.loads(data)


def inner_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) the pixel of `mask` farthest from its edge."""
    depth = ndimage.distance_transform_edt(mask)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def distractor_point(simulator: ConveyorSimulator, frame_index: int) -> tuple[int, int]:
    """A point well inside a typical visible distractor of the simulator's frame `frame_index`: of the distractor
    regions clear of the border, the one of median area (the largest are overlapping pairs, the smallest cut)."""
    scene = simulator.frame(frame_index)
    labels, n = ndimage.label(scene.distractors)
    assert n, "no distractor in view"
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    inside = [k for k in range(1, n + 1) if k not in edge] or list(range(1, n + 1))
    areas = ndimage.sum(scene.distractors, labels, inside)
    typical = inside[int(np.argsort(areas)[len(areas) // 2])]
    return inner_point(labels == typical)
