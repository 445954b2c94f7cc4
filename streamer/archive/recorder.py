"""The running processor's archive: the keep policy per camera on the inference thread, the writer behind it,
operators' marks, the reject hook and the audit trail.

`ArchiveTee` sits in the inference thread's sink chain (after the tally, beside the publisher): for each result
it asks the camera's rules, and queues what is kept for the writer thread; nothing here touches the disk.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

from streamer.archive.audit import current_actor
from streamer.archive.config import ArchiveConfig
from streamer.archive.policy import BEFORE, CameraRules, FrameFacts
from streamer.archive.writer import ArchivedFrame, ArchivedSupport, ArchiveMetrics, ArchiveWriter, AuditRow
from streamer.sources.base import Frame
from streamer.stream.messages import PartOptions, result_message
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)

AUDIT_SCHEMA = "persense.audit/1"
AUDIT_ACTIONS = ("support", "pause", "resume", "config_reload", "mark")
_HEADER_OPTIONS = PartOptions(masks=True)


def audit_topic(camera: str) -> bytes:
    return f"persense/{camera}/audit".encode()


class Archive:
    """Args:
        config: stream.archive.
        cameras: the processor's camera ids.
        registry: the processor's metrics registry (persense_archive_* series are added to it).
        send: (camera, [topic, header]) -> None: puts a message on the bus (the publisher's submit_message).
        out_of_spec_total: camera -> items found out of spec so far (the tally's), or None where nothing is counted.
    """

    def __init__(self, config: ArchiveConfig, cameras: list[str], registry=None,
                 send: Callable[[str, list[bytes]], None] | None = None,
                 out_of_spec_total: Callable[[str], int | None] | None = None):
        self.config = config
        self.cameras = list(cameras)
        self.metrics = ArchiveMetrics(registry, self.cameras) if registry is not None else None
        self.writer = ArchiveWriter(config, self.metrics)
        self._send = send
        self._out_of_spec_total = out_of_spec_total or (lambda camera: None)
        self._rules = {camera: CameraRules(config.policy_of(camera)) for camera in self.cameras}
        self._out_of_spec_seen: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()  # marks and rejects come from other threads
        self._marks: dict[str, int] = {}
        self._rejects: dict[str, int] = {}

    # -- life -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.writer.start()

    def alive(self) -> bool:
        return self.writer.alive()

    def stop(self) -> None:
        self.writer.stop()

    def status(self) -> dict:
        return self.writer.status()

    # -- any thread -----------------------------------------------------------------------------------
    def mark(self, camera: str | None, note: str = "") -> None:
        """An operator marks the next frame of `camera` (None: of every camera) to be kept, with the seconds
        around it; recorded in the audit trail with who asked."""
        for name in self.cameras if camera is None else [camera]:
            with self._lock:
                self._marks[name] = self._marks.get(name, 0) + 1
            self.audit("mark", name, detail={"note": note[:200]} if note else {})

    def note_reject(self, camera: str) -> None:
        """A reject was decided on `camera` (the tally's reject stations): the frame being tallied is kept as a
        reject's frame."""
        with self._lock:
            self._rejects[camera] = self._rejects.get(camera, 0) + 1

    def note_support(self, support_id: str, image, mask) -> None:
        """Keep a support's image and mask (once per id), so that a replay can use the recorded support."""
        self.writer.put(ArchivedSupport(support_id, image, mask))

    def audit(self, action: str, camera: str | None, old_support: str | None = None, new_support: str | None = None,
              detail: dict | None = None, who: str | None = None) -> dict:
        """One entry of the audit trail: into the index and onto the bus (persense/<camera>/audit) -> the entry."""
        row = AuditRow(time.time(), camera, action, who or current_actor(), old_support, new_support, detail or {})
        self.writer.put(row)
        doc = {"schema": AUDIT_SCHEMA, "ts": round(row.ts, 6), "camera": camera, "action": action, "who": row.who,
               "old_support": old_support, "new_support": new_support, **({"detail": row.detail} if detail else {})}
        if self._send is not None:
            for name in self.cameras if camera is None else [camera]:
                self._send(name, [audit_topic(name), json.dumps({**doc, "camera": name}).encode()])
        return doc

    # -- the inference thread ------------------------------------------------------------------------
    def offer(self, frame: Frame, result: SegmentationResult, support_id: str) -> None:
        camera = frame.camera
        rules = self._rules.get(camera)
        if rules is None:
            return
        seq = self._seq[camera] = self._seq.get(camera, -1) + 1
        with self._lock:
            marked = self._marks.pop(camera, 0) > 0
            rejected = self._rejects.pop(camera, 0) > 0
        total = self._out_of_spec_total(camera)
        new_out_of_spec = 0
        if total is not None:
            new_out_of_spec = max(total - self._out_of_spec_seen.get(camera, total), 0)
            self._out_of_spec_seen[camera] = total
        facts = FrameFacts(float(frame.capture_ts), result.count, float(result.match_quality), new_out_of_spec,
                           rejected, marked)
        reasons = rules.decide(facts)
        if not reasons:
            rules.hold(facts.ts, (frame, result, support_id, seq))
            return
        if rules.wants_before(reasons):
            for held in rules.take_held(facts.ts):
                self._queue(*held, [BEFORE])
        self._queue(frame, result, support_id, seq, reasons, new_out_of_spec, rejected)

    def _queue(self, frame: Frame, result: SegmentationResult, support_id: str, seq: int, reasons: list[str],
               out_of_spec: int = 0, rejected: bool = False) -> None:
        def encode(result, frame=frame, seq=seq, support_id=support_id) -> bytes:
            return result_message(frame, result, seq, support_id, _HEADER_OPTIONS)[1]

        self.writer.put(ArchivedFrame(
            frame.camera, int(frame.index), float(frame.capture_ts), frame.image, None, result, encode,
            result.count, float(result.match_quality), frame.truth_count, frame.truth_kinds, support_id, reasons,
            out_of_spec, rejected))


class ArchiveTee:
    """The inference thread's sink with the archive beside it: the sink first (the bus), then the archive."""

    def __init__(self, sink, archive: Archive):
        self.sink, self.archive = sink, archive

    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool:
        accepted = self.sink.submit(frame, result, support_id, wait=wait)
        try:
            self.archive.offer(frame, result, support_id)
        except Exception:  # the archive must never cost the line a result
            log.exception("archive: keeping frame %d of camera %s failed", frame.index, frame.camera)
        return accepted
