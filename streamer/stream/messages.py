"""Building the published ZeroMQ messages (docs/stream-protocol.md is the contract).

A message is multipart: [topic, header JSON, *binary parts]; the header's `parts` list names each binary
part in order, so a subscriber never has to guess what follows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.render import overlay
from streamer.schema import result_to_dict
from streamer.sources.base import Frame
from streamer.types import SegmentationResult

STATUS_SCHEMA = "persense.status/1"
TALLY_SCHEMA = "persense.tally/1"
PART_OVERLAY = "overlay/jpeg"
PART_LABELS = "labels/png"


def result_topic(camera: str) -> bytes:
    return f"persense/{camera}/result".encode()


def status_topic(camera: str) -> bytes:
    return f"persense/{camera}/status".encode()


def tally_topic(camera: str) -> bytes:
    return f"persense/{camera}/tally".encode()


@dataclass(frozen=True)
class PartOptions:
    masks: bool = True
    overlay_jpeg: bool = False
    jpeg_quality: int = 80
    label_map_png: bool = False


def encode_jpeg(image_rgb: np.ndarray, quality: int = 80) -> bytes:
    """uint8[H, W, 3] RGB -> JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def _png16(labels: np.ndarray) -> bytes:
    # A fast compression level: the label map is mostly runs, and this runs once per frame in real time.
    ok, data = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def result_message(
    frame: Frame,
    result: SegmentationResult,
    seq: int,
    support_id: str,
    options: PartOptions,
    publish_ts: float | None = None,
) -> list[bytes]:
    """One result -> [topic, header JSON, *parts]; publish_ts defaults to now (unix seconds)."""
    parts: list[bytes] = []
    names: list[str] = []
    if options.overlay_jpeg:
        parts.append(encode_jpeg(overlay(frame.image, result), options.jpeg_quality))
        names.append(PART_OVERLAY)
    if options.label_map_png:
        parts.append(_png16(result.label_map()))
        names.append(PART_LABELS)
    extra = {
        "camera": frame.camera,
        "seq": seq,
        "frame_index": int(frame.index),
        "capture_ts": round(float(frame.capture_ts), 6),
        "publish_ts": 0.0,
        "support_id": support_id,
        "parts": names,
    }
    if frame.truth_count is not None:
        extra["truth_count"] = int(frame.truth_count)
    header = result_to_dict(result, include_masks=options.masks, **extra)
    # Stamped after encoding the masks and parts, as close to the send as this function gets.
    header["publish_ts"] = round(time.time() if publish_ts is None else publish_ts, 6)
    return [result_topic(frame.camera), json.dumps(header, separators=(",", ":")).encode(), *parts]


def status_message(camera: str, status: dict) -> list[bytes]:
    """A heartbeat or state change of one camera -> [topic, header JSON]."""
    header = {"schema": STATUS_SCHEMA, "camera": camera, "ts": round(time.time(), 6), **status}
    return [status_topic(camera), json.dumps(header, separators=(",", ":")).encode()]


def reject_topic(camera: str) -> bytes:
    return f"persense/{camera}/reject".encode()


def reject_message(camera: str, reject: dict) -> list[bytes]:
    """One reject decision (streamer.stream.rejects.RejectEvent.to_dict) -> [topic, header JSON]."""
    return [reject_topic(camera), json.dumps(reject, separators=(",", ":")).encode()]


def tally_message(camera: str, seq: int, tally: dict) -> list[bytes]:
    """One interval's tally of items passed (streamer.stream.tally) -> [topic, header JSON]."""
    header = {"schema": TALLY_SCHEMA, "camera": camera, "seq": seq, "ts": round(time.time(), 6), **tally}
    return [tally_topic(camera), json.dumps(header, separators=(",", ":")).encode()]
