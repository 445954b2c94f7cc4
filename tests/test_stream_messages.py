"""Message encoding and decoding, the metric names, the HTTP probes and the Grafana dashboard."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from streamer.sources.base import Frame
from streamer.stream.messages import PartOptions, result_message, status_message
from streamer.stream.metrics import SourceSnapshot, StreamMetrics
from streamer.console.app import build_app
from streamer.console.server import HttpServer
from streamer.subscriber import ProtocolError, ResultMessage, StatusMessage, decode_message
from streamer.types import Instance, SegmentationResult

ROOT = Path(__file__).resolve().parents[1]
ISSUE_METRICS = {
    "persense_frames_total", "persense_stage_seconds", "persense_end_to_end_seconds", "persense_objects",
    "persense_source_up", "persense_source_reconnects_total", "persense_last_frame_age_seconds",
    "persense_publish_dropped_total", "persense_match_quality",
    # issue 11
    "persense_publish_subscriber_overflows_total", "persense_control_requests_total",
    "persense_control_restarts_total", "persense_auth_denied_total",
    # issue 13
    "persense_items_total", "persense_item_diameter", "persense_active_tracks",
    "persense_zone_entries_total", "persense_zone_items", "persense_zone_seconds",
    # issue 26
    "persense_rejects_total", "persense_rejects_missed_total", "persense_reject_arrival_error_seconds",
    # issue 26: the plant's outputs (series only where an output is on)
    "persense_output_up", "persense_output_messages_total", "persense_output_dropped_total",
    "persense_output_reconnects_total", "persense_output_down_seconds_total",
}


def _result() -> tuple[Frame, SegmentationResult]:
    image = np.zeros((30, 40, 3), np.uint8)
    square = np.ones((5, 6), bool)
    ring = np.ones((4, 4), bool)
    ring[1:3, 1:3] = False
    instances = [Instance(0, 0.9, (2, 3, 8, 8), square), Instance(1, 0.7, (30, 20, 34, 24), ring)]
    return Frame(image, 17, 1000.5, "belt-1", truth_count=2), SegmentationResult(40, 30, instances, 2.2)


def test_result_message_round_trip_with_parts():
    frame, result = _result()
    before = time.time()
    parts = result_message(frame, result, 5, "abc", PartOptions(overlay_jpeg=True, label_map_png=True))
    after = time.time()
    assert parts[0] == b"persense/belt-1/result"
    msg = decode_message(parts)
    assert isinstance(msg, ResultMessage)
    h = msg.header
    assert (h["seq"], h["frame_index"], h["support_id"], h["truth_count"], h["camera"]) == (5, 17, "abc", 2, "belt-1")
    assert h["count"] == len(h["instances"]) == 2 and h["parts"] == ["overlay/jpeg", "labels/png"]
    assert before <= h["publish_ts"] <= after and h["capture_ts"] == 1000.5
    masks = msg.masks()
    assert [m.shape for m in masks] == [(30, 40)] * 2
    assert masks[0][3:8, 2:8].all() and masks[0].sum() == 30
    assert masks[1].sum() == 12 and not masks[1][21, 31]
    labels = msg.label_map()
    assert labels.dtype == np.uint16 and labels[5, 5] == 1 and labels[20, 30] == 2 and labels[0, 0] == 0
    assert msg.overlay().shape == (30, 40, 3)


def test_masks_can_be_left_out():
    frame, result = _result()
    msg = decode_message(result_message(frame, result, 0, "s", PartOptions(masks=False)))
    assert msg.parts == {} and "mask" not in msg.instances[0] and msg.masks() == []


def test_status_message_decodes():
    msg = decode_message(status_message("cam0", {"event": "heartbeat", "state": "streaming"}))
    assert isinstance(msg, StatusMessage) and msg.header["state"] == "streaming"


@pytest.mark.parametrize("frames, why", [
    ([b"persense/cam0/result"], "at least 2"),
    ([b"other/cam0/result", b"{}"], "topic"),
    ([b"persense/cam0/result", b"{not json"], "not JSON"),
    ([b"persense/cam0/result", b'{"schema": "persense.result/9"}'], "schema"),
    ([b"persense/cam0/result", b'{"schema": "persense.result/1", "parts": ["labels/png"]}'], "announces 1"),
    ([b"persense/cam0/result", b'{"schema": "persense.result/1"}'], "no 'parts' list"),
])
def test_malformed_messages_are_refused(frames, why):
    with pytest.raises(ProtocolError, match=why):
        decode_message(frames)


@pytest.mark.parametrize("change, why", [
    ({"seq": None}, "lacks the 'seq' field"),
    ({"capture_ts": None}, "lacks the 'capture_ts' field"),
    ({"count": None}, "lacks the 'count' field"),
    ({"seq": "7"}, "'seq' is str, expected int"),
    ({"capture_ts": True}, "'capture_ts' is bool, expected int or float"),
    ({"instances": {}}, "'instances' is dict, expected list"),
])
def test_result_headers_without_the_documented_fields_are_refused(change, why):
    frame, result = _result()
    topic, header, *parts = result_message(frame, result, 3, "s", PartOptions())
    fields = json.loads(header)
    for key, value in change.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    with pytest.raises(ProtocolError, match=why):
        decode_message([topic, json.dumps(fields).encode(), *parts])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_metrics_http_names_and_probes():
    metrics = StreamMetrics(["a", "b"])
    metrics.watch_sources(lambda: [SourceSnapshot("a", True, 3, 0.25), SourceSnapshot("b", False, 0, None)])
    metrics.frame("a", "processed")
    metrics.observe_stages("a", {"encode": 12.0, "engine_private_stage": 1.0})
    ready = {"value": False}
    app = build_app(metrics.exposed, lambda: (True, {"threads": {}}), lambda: (ready["value"], {"cameras": {}}))
    server = HttpServer(app, "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(base + "/metrics")
        text = body.decode()
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/readyz") == (503, b'{"ok":false,"cameras":{}}')
        ready["value"] = True
        assert _get(base + "/readyz")[0] == 200
        assert _get(base + "/nope")[0] == 404
    finally:
        server.stop()
    assert status == 200
    names = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    exposed = {n + "_total" if f"{n}_total" in text and not n.endswith("_total") else n for n in names}
    assert exposed == ISSUE_METRICS
    assert 'persense_frames_total{camera="a",outcome="processed"} 1.0' in text
    assert 'persense_frames_total{camera="b",outcome="dropped_stale"} 0.0' in text
    assert 'persense_stage_seconds_count{camera="a",stage="encode"} 1.0' in text
    assert "engine_private_stage" not in text  # labels stay bounded
    assert 'persense_source_reconnects_total{camera="a"} 3.0' in text
    assert 'persense_last_frame_age_seconds{camera="a"} 0.25' in text
    assert 'persense_last_frame_age_seconds{camera="b"} NaN' in text


def test_grafana_dashboard_uses_exactly_the_metrics():
    dashboard = json.loads((ROOT / "dashboards" / "grafana-persense.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bpersense_[a-z_]+", exprs)}
    assert used == ISSUE_METRICS
