"""The fan-out: every message the publisher sends on ZeroMQ, handed to the plant's outputs as
(camera, kind, payload dict).

It runs on the publisher's thread (streamer.stream.publisher), which must never wait: each output's `offer`
only folds figures or puts into a bounded queue, and an output that raises is logged (once per 100) and
skipped. Kinds: `result` (a summary, `result_summary`), `status` (heartbeats and state changes), and the
last level of a built message's topic (`tally`, `reject`).
"""

from __future__ import annotations

import json
import logging
from typing import Iterable, Protocol

log = logging.getLogger(__name__)

_TALLY_FIELDS = ("tracks", "passed_total", "truth_passed_total")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a built message's header parsed for the outputs; larger ones are skipped


class Output(Protocol):
    name: str

    def offer(self, camera: str, kind: str, payload: dict) -> None: ...


def result_summary(frame, result, seq: int, support_id: str) -> dict:
    """One published result (streamer.sources.base.Frame, streamer.types.SegmentationResult, its seq) -> the
    figures a PLC or historian reads per frame, without instances or masks (the fields are the result
    header's, docs/stream-protocol.md)."""
    summary = {"v": 1, "camera": frame.camera, "seq": seq, "frame_index": int(frame.index),
               "capture_ts": round(float(frame.capture_ts), 6), "support_id": support_id, "count": result.count,
               "match_quality": round(float(result.match_quality), 4)}
    if result.label is not None:
        summary["label"] = result.label
    if result.reason:
        summary["reason"] = result.reason
    summary.update({key: value for key, value in result.tally.items() if key in _TALLY_FIELDS})
    if frame.truth_count is not None:
        summary["truth_count"] = int(frame.truth_count)
    return summary


def message_kind(parts: list[bytes]) -> tuple[str, dict] | None:
    """A built message ([topic, header JSON, ...]) -> (kind, header dict), None where it cannot be read."""
    if len(parts) < 2 or len(parts[1]) > MAX_MESSAGE_BYTES:
        return None
    try:
        kind = bytes(parts[0]).decode().rsplit("/", 1)[-1]
        payload = json.loads(bytes(parts[1]))
    except (UnicodeDecodeError, ValueError):
        return None
    return (kind, payload) if isinstance(payload, dict) else None


class OutputFanout:
    """Routes each camera's messages to the outputs that serve that camera.

    Args:
        routes: camera -> the outputs it feeds (a camera left out feeds none).
    """

    def __init__(self, routes: dict[str, list[Output]]):
        self.routes = {camera: list(outputs) for camera, outputs in routes.items()}
        self._failures: dict[str, int] = {}

    @property
    def outputs(self) -> list[Output]:
        seen: dict[int, Output] = {}
        for outputs in self.routes.values():
            for output in outputs:
                seen.setdefault(id(output), output)
        return list(seen.values())

    def __call__(self, camera: str, kind: str, payload: dict) -> None:
        for output in self.routes.get(camera, ()):
            try:
                output.offer(camera, kind, payload)
            except Exception:  # one output's bug must not cost the others (or the publisher) their messages
                failures = self._failures[output.name] = self._failures.get(output.name, 0) + 1
                if failures == 1 or failures % 100 == 0:
                    log.exception("output %s: taking a %s message of camera %s failed (%d so far)", output.name,
                                  kind, camera, failures)

    def offer_parts(self, camera: str, parts: list[bytes]) -> None:
        """A built message (tally, reject, ...): parsed only where an output takes the camera's messages."""
        if not self.routes.get(camera):
            return
        read = message_kind(parts)
        if read is None:
            log.debug("camera %s: a message the outputs cannot read was skipped", camera)
            return
        self(camera, *read)

    def cameras(self) -> Iterable[str]:
        return self.routes.keys()
