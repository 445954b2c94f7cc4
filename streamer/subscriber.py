"""A Python client for the published stream (docs/stream-protocol.md): subscribe, decode, check gaps.

    with Subscriber("tcp://127.0.0.1:5556", cameras=["cam0"]) as sub:
        msg = sub.receive(timeout=5.0)
        if isinstance(msg, ResultMessage):
            print(msg.camera, msg.seq, msg.count, [m.shape for m in msg.masks()])
        elif isinstance(msg, TallyMessage):
            print(msg.camera, msg.passed_total, [item.measure.get("diameter") for item in msg.items if item.measure])
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import zmq

from streamer.rle import decode as rle_decode

RESULT_SCHEMA = "persense.result/1"
STATUS_SCHEMA = "persense.status/1"
TALLY_SCHEMA = "persense.tally/1"
KINDS = ("result", "status", "tally", "reject")
REJECT_VERSION = 1
# Result header fields a client may rely on (docs/stream-protocol.md) -> the JSON types they must have.
_RESULT_FIELDS: dict[str, tuple[type, ...]] = {
    "seq": (int,), "frame_index": (int,), "capture_ts": (int, float), "count": (int,), "instances": (list,),
}

_TALLY_FIELDS: dict[str, tuple[type, ...]] = {
    "seq": (int,), "passed": (int,), "passed_total": (int,), "measured_total": (int,), "out_of_spec_total": (int,),
    "tracks": (int,), "units": (str,), "by_direction": (dict,), "specs": (dict,), "size_histogram": (dict,),
    "items": (list,), "items_left_out": (int,),
}


class ProtocolError(ValueError):
    """A message that does not follow the stream protocol."""


@dataclass
class ResultMessage:
    """One frame's result: the header JSON and the binary parts by name ("overlay/jpeg", "labels/png")."""

    camera: str
    header: dict
    parts: dict[str, bytes] = field(default_factory=dict)

    @property
    def seq(self) -> int:
        return int(self.header["seq"])

    @property
    def count(self) -> int:
        return int(self.header["count"])

    @property
    def instances(self) -> list[dict]:
        return self.header["instances"]

    def masks(self) -> list[np.ndarray]:
        """bool[H, W] per instance (empty if the publisher sends no masks)."""
        return [rle_decode(inst["mask"]) for inst in self.instances if "mask" in inst]

    def overlay(self) -> np.ndarray | None:
        """uint8[H, W, 3] RGB overlay image, if the publisher sends one."""
        data = self.parts.get("overlay/jpeg")
        if data is None:
            return None
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def label_map(self) -> np.ndarray | None:
        """uint16[H, W] (0 background, instance i is i + 1), if the publisher sends one."""
        data = self.parts.get("labels/png")
        if data is None:
            return None
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@dataclass
class StatusMessage:
    """A camera's heartbeat or state change (header["event"]: heartbeat, state, paused, resumed, support)."""

    camera: str
    header: dict


@dataclass
class PassedItem:
    """One counted item of a tally message: its figures are final (the median over its track)."""

    track_id: int
    line: str
    direction: str  # "forward" or "backward"
    in_spec: bool | None  # None: no spec, or a figure the spec needs is unknown
    measure: dict[str, float | None] | None  # None: the item was never seen whole
    truth_diameter: float | None = None  # the flow simulator only


@dataclass
class ZoneTally:
    """One zone of a tally message."""

    name: str
    in_zone: int
    entries: int
    entries_total: int
    dwell: dict[int, float]  # track id -> seconds in the zone, for the tracks that ended in the interval
    dwell_median_s: float | None


@dataclass
class TallyMessage:
    """One interval's tally of items passed (`persense/<camera>/tally`); `header` holds every field as sent."""

    camera: str
    header: dict
    seq: int
    passed: int
    passed_total: int
    out_of_spec_total: int
    measured_total: int
    units: str
    by_direction: dict[str, int]
    items: list[PassedItem]
    zones: dict[str, ZoneTally]
    truth_passed_total: int | None = None


@dataclass
class RejectMessage:
    """An item a reject station must remove (`persense/<camera>/reject`); `header` holds every field as sent."""

    camera: str
    header: dict
    station: str
    track_id: int
    reasons: list[dict]
    due_wall: float
    pulse_ms: int
    missed: bool


_REJECT_FIELDS: dict[str, tuple[type, ...]] = {
    "v": (int,), "frame_id": (int,), "track_id": (int,), "station": (str,), "reasons": (list,),
    "decided_wall": (int, float), "due_wall": (int, float), "due_mono": (int, float), "pulse_ms": (int,),
}


def _reject(camera: str, header: dict) -> RejectMessage:
    _check_fields(header, _REJECT_FIELDS, "reject")
    if header["v"] != REJECT_VERSION:
        raise ProtocolError(f"reject version {header['v']}, expected {REJECT_VERSION}")
    if not isinstance(header.get("missed"), bool) or not all(isinstance(r, dict) for r in header["reasons"]):
        raise ProtocolError("reject header: missed must be a bool and reasons a list of objects")
    return RejectMessage(camera, header, header["station"], header["track_id"], header["reasons"],
                         float(header["due_wall"]), header["pulse_ms"], header["missed"])


def _check_fields(header: dict, fields: dict[str, tuple[type, ...]], what: str) -> None:
    for key, kinds in fields.items():
        if key not in header:
            raise ProtocolError(f"{what} header lacks the {key!r} field")
        value = header[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ProtocolError(f"{what} header field {key!r} is {type(value).__name__}, "
                                f"expected {' or '.join(k.__name__ for k in kinds)}")


def _tally(camera: str, header: dict) -> TallyMessage:
    if header.get("schema") != TALLY_SCHEMA:
        raise ProtocolError(f"tally schema {header.get('schema')!r}, expected {TALLY_SCHEMA}")
    _check_fields(header, _TALLY_FIELDS, "tally")
    for item in header["items"]:
        if not isinstance(item, dict) or not isinstance(item.get("in_spec"), (bool, type(None))) or not isinstance(
                item.get("measure"), (dict, type(None))):
            raise ProtocolError("tally header: an item is not an object with in_spec (bool or null) and measure "
                                "(object or null)")
    try:
        items = [PassedItem(int(i["track_id"]), str(i["line"]), str(i["direction"]), i["in_spec"], i["measure"],
                            i.get("truth_diameter")) for i in header["items"]]
        zones = {name: ZoneTally(name, int(z["in_zone"]), int(z["entries"]), int(z["entries_total"]),
                                 {int(d["track_id"]): float(d["seconds"]) for d in z["dwell"]}, z["dwell_median_s"])
                 for name, z in header.get("zones", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProtocolError(f"tally header: malformed items or zones ({type(exc).__name__}: {exc})") from None
    return TallyMessage(camera, header, header["seq"], header["passed"], header["passed_total"],
                        header["out_of_spec_total"], header["measured_total"], header["units"],
                        dict(header["by_direction"]), items, zones, header.get("truth_passed_total"))


def decode_message(frames: list[bytes]) -> ResultMessage | StatusMessage | TallyMessage | RejectMessage:
    """[topic, header JSON, *parts] -> a message; raises ProtocolError on anything malformed."""
    if len(frames) < 2:
        raise ProtocolError(f"expected at least 2 frames (topic, header), got {len(frames)}")
    topic = bytes(frames[0]).decode("utf-8", "replace").split("/")
    if len(topic) != 3 or topic[0] != "persense" or topic[2] not in KINDS:
        raise ProtocolError(f"unexpected topic {'/'.join(topic)!r}")
    try:
        header = json.loads(bytes(frames[1]))
    except ValueError as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    camera = topic[1]
    if topic[2] == "status":
        if header.get("schema") != STATUS_SCHEMA:
            raise ProtocolError(f"status schema {header.get('schema')!r}, expected {STATUS_SCHEMA}")
        return StatusMessage(camera, header)
    if topic[2] == "tally":
        return _tally(camera, header)
    if topic[2] == "reject":
        return _reject(camera, header)
    if header.get("schema") != RESULT_SCHEMA:
        raise ProtocolError(f"result schema {header.get('schema')!r}, expected {RESULT_SCHEMA}")
    names = header.get("parts")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError("result header has no 'parts' list of names")
    if len(names) != len(frames) - 2:
        raise ProtocolError(f"header announces {len(names)} part(s) but {len(frames) - 2} followed")
    _check_fields(header, _RESULT_FIELDS, "result")
    return ResultMessage(camera, header, {name: bytes(data) for name, data in zip(names, frames[2:])})


class Subscriber:
    """A SUB socket on the processor's PUB endpoint.

    Args:
        cameras: only these cameras (default all).
        status: also receive status messages.
        tally: also receive tally messages (items passed; sent only where the processor counts items).
        rejects: also receive reject messages (sent only where reject stations are configured).
        socket_options: set before connecting, e.g. CURVE's from
            streamer.stream.security.client_socket_options(client key file, server public key file).
    """

    def __init__(self, endpoint: str, cameras: list[str] | None = None, status: bool = True,
                 socket_options: dict | None = None, tally: bool = True, rejects: bool = True):
        self._context = zmq.Context()
        self._sock = self._context.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        for option, value in (socket_options or {}).items():
            self._sock.setsockopt(option, value)
        self._kinds = ({"result"} | ({"status"} if status else set()) | ({"tally"} if tally else set())
                       | ({"reject"} if rejects else set()))
        for camera in cameras or [None]:
            if camera is None:
                # Topics are prefix-matched: "persense/" takes every kind; those not asked for are dropped on receipt.
                self._sock.setsockopt(zmq.SUBSCRIBE, b"persense/")
                continue
            for kind in sorted(self._kinds):
                self._sock.setsockopt(zmq.SUBSCRIBE, f"persense/{camera}/{kind}".encode())
        self._sock.connect(endpoint)
        self._last_seq: dict[str, int] = {}
        self.gaps: dict[str, int] = {}  # camera -> results missed (seq jumps), restarts not counted

    def receive(self, timeout: float | None = None
                ) -> ResultMessage | StatusMessage | TallyMessage | RejectMessage | None:
        """The next message, or None after `timeout` seconds (None: wait for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not self._sock.poll(None if left is None else int(left * 1000)):
                return None
            msg = decode_message(self._sock.recv_multipart())
            kind = {StatusMessage: "status", TallyMessage: "tally", RejectMessage: "reject"}.get(type(msg), "result")
            if kind not in self._kinds:
                continue
            if isinstance(msg, ResultMessage):
                self._track(msg)
            return msg

    def _track(self, msg: ResultMessage) -> None:
        last = self._last_seq.get(msg.camera)
        if last is not None and msg.seq > last + 1:
            self.gaps[msg.camera] = self.gaps.get(msg.camera, 0) + msg.seq - last - 1
        self._last_seq[msg.camera] = msg.seq

    def close(self) -> None:
        self._sock.close()
        self._context.term()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
