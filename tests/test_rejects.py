"""Reject events (streamer.stream.rejects) against the flow simulator's truth, and their bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.rejects import _exact_result, replay, score
from streamer.simulator.flow import TOO_LARGE, TOO_SMALL, FlowSimulator
from streamer.sources.base import Frame
from streamer.stream.metrics import StreamMetrics
from streamer.tracking.arrival import FrameClock, frames_to_line
from streamer.stream.tally import CameraTally
from streamer.stream.tally_config import TallyConfig
from streamer.stream.tally_sink import TallySink
from tests.stream_capture import run_and_collect
from tests.test_stream_e2e import _free_port

REJECT_KEYS = {"v", "camera", "frame_id", "track_id", "station", "reasons", "decided_wall", "due_wall", "due_mono",
               "pulse_ms", "missed"}


def _args(**kw):
    base = dict(seconds=12.0, fps=30.0, speed=8.0, objects=40, px_per_mm=2.0, out_of_spec=0.3, downstream_mm=100.0,
                seed=3, processed=1.0, latency_ms=100.0)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("processed", [1.0, 0.35])
def test_rejects_name_the_out_of_spec_items_and_their_arrival(processed):
    args = _args(processed=processed)
    rejects, indices, times = replay(args)
    out = score(args, rejects, indices, times)
    assert (out["processed_share"] == 1.0) if processed == 1.0 else out["processed_share"] < 0.5
    assert out["expected"] >= 10  # enough out-of-spec items for the figures to say something
    assert out["precision"] >= 0.98 and out["recall"] >= 0.98
    assert out["error_median_s"] <= out["frame_s"]
    assert all(REJECT_KEYS <= set(doc) and doc["v"] == 1 and doc["reasons"] for doc in rejects)
    assert all(r["measure"] == "diameter" and r["unit"] == "mm" for doc in rejects for r in doc["reasons"])
    assert not any(doc["missed"] for doc in rejects)  # decided long before the station, 100 mm downstream


def test_a_late_decision_is_published_as_missed_not_dropped():
    """A station just inside the entry edge: items are decided only after they passed it."""
    sim = FlowSimulator(320, 240, 12, 0, 4.0, 1, 2.0, out_of_spec=0.5)
    nominal = sim.nominal_diameter_px / 2.0
    config = TallyConfig.model_validate({
        "calibration": {"px_per_mm": 2.0}, "specs": {"diameter": {"min": 0.75 * nominal, "max": 1.25 * nominal}},
        "rejects": [{"name": "early", "line": [0.05, 0, 0.05, 1], "decide_after": 3}]})
    tally = CameraTally(config, "cam0", sim.support()[1])
    now = [0.0]
    tally.rejects.wall_clock = lambda: now[0]
    events = []
    for index in range(0, 240, 2):
        scene, truth = sim.frame(index)
        now[0] = 100.0 + index / 30 + 0.05
        tally.observe(Frame(scene.image, index, 100.0 + index / 30, "cam0", scene.count, truth),
                      _exact_result(scene, 320, 240))
        events += tally.reject_events
    assert events and all(e.missed and e.due_wall < e.decided_wall for e in events)
    assert all(sim.defects([e.truth_id])[0] in (TOO_SMALL, TOO_LARGE) for e in events)


def test_the_sink_sends_each_reject_and_counts_it():
    sim = FlowSimulator(320, 240, 12, 0, 4.0, 2, 2.0, out_of_spec=0.5)
    nominal = sim.nominal_diameter_px / 2.0
    config = TallyConfig.model_validate({
        "calibration": {"px_per_mm": 2.0}, "specs": {"diameter": {"min": 0.75 * nominal, "max": 1.25 * nominal}},
        "rejects": [{"name": "jet", "line": [0.9, 0, 0.9, 1], "decide_after": 4, "lead_ms": 20, "pulse_ms": 30}]})
    metrics = StreamMetrics(["cam0"])
    sent = []

    told = []  # (camera, rejects sent so far, frames passed on so far) at each on_reject
    passed = []

    class Sink:
        def submit(self, frame, result, support_id, wait=False):
            passed.append(frame.index)
            return True

    sink = TallySink(Sink(), config, ["cam0"], metrics, lambda camera, parts: sent.append(parts),
                     sim.support()[1], on_reject=lambda camera: told.append((camera, len(sent), len(passed))))
    start = 1.0e9
    for index in range(0, 200, 2):
        scene, truth = sim.frame(index)
        sink.submit(Frame(scene.image, index, start + index / 30, "cam0", scene.count, truth),
                    _exact_result(scene, 320, 240), "s")
    rejects = [json.loads(parts[1]) for parts in sent if parts[0] == b"persense/cam0/reject"]
    assert rejects and all(REJECT_KEYS <= set(doc) for doc in rejects)
    assert all(doc["pulse_ms"] == 30 and abs(doc["arrival_wall"] - doc["due_wall"] - 0.02) < 1e-6 for doc in rejects)
    counted = metrics.registry.get_sample_value("persense_rejects_total", {"camera": "cam0", "station": "jet"})
    missed = metrics.registry.get_sample_value("persense_rejects_missed_total", {"camera": "cam0", "station": "jet"})
    assert counted == len(rejects) and missed == sum(doc["missed"] for doc in rejects)
    # The archive's hook hears of each reject, before the frame that decided it goes on (so that frame is kept).
    assert len(told) == len(rejects) and all(camera == "cam0" for camera, _, _ in told)
    frames_with_reject = {n for _, _, n in told}
    assert all(n < len(passed) for n in frames_with_reject)
    # The simulator's truth: each prediction's error is observed once its item has reached the station.
    errors = metrics.registry.get_sample_value("persense_reject_arrival_error_seconds_count",
                                               {"camera": "cam0", "station": "jet"})
    assert errors >= 1


def test_match_quality_below_the_minimum_is_a_reason():
    sim = FlowSimulator(320, 240, 12, 0, 4.0, 2, 2.0)
    config = TallyConfig.model_validate({
        "calibration": {"px_per_mm": 2.0}, "specs": {"diameter": {"min": 1.0, "max": 1000.0}},
        "rejects": [{"line": [0.9, 0, 0.9, 1], "decide_after": 4, "min_match_quality": 0.5}]})
    tally = CameraTally(config, "cam0", sim.support()[1])
    events = []
    for index in range(0, 120, 2):
        scene, truth = sim.frame(index)
        result = _exact_result(scene, 320, 240)
        # Items in the lower half are poor matches (a foreign object), the others good ones.
        result.instances = [replace(i, score=0.3 if i.bbox[1] > 120 else 0.9) for i in result.instances]
        tally.observe(Frame(scene.image, index, 1e9 + index / 30, "cam0", scene.count, truth), result)
        events += tally.reject_events
    assert events and all([r["measure"] for r in e.reasons] == ["match_quality"] for e in events)
    assert all(e.reasons[0]["value"] < 0.5 and e.reasons[0]["min"] == 0.5 for e in events)


def test_frames_to_line_and_the_frame_clock():
    points = np.array([[0.0, 5.0], [12.0, 5.0]])
    velocity = np.array([[2.0, 0.0], [2.0, 0.0]])
    assert frames_to_line(points, velocity, np.array([10.0, 0.0]), np.array([10.0, 9.0])).tolist() == [5.0, -1.0]
    assert math.isnan(frames_to_line(points[:1], np.array([[0.0, 1.0]]), np.array([10.0, 0]), np.array([10.0, 9]))[0])
    clock = FrameClock()
    for index in (10, 13, 15, 20):
        clock.add(index, 100.0 + index * 0.04)
    assert clock.period == pytest.approx(0.04) and clock.gap() == 5
    assert clock.time_of(30) == pytest.approx(101.2) and clock.time_of(14) == pytest.approx(100.56)
    clock.add(3, 7.0)  # the source restarted its counter
    assert clock.period is None


def test_simulator_out_of_spec_items_and_their_arrival():
    sim = FlowSimulator(320, 240, 12, 1, 5.0, 4, 2.0, out_of_spec=0.3)
    ids, arrival, defects = sim.arrivals((200.0, 0.0, 200.0, 240.0), 0, 600)
    assert 0.2 < np.mean(defects != 0) < 0.4 and np.all(np.diff(arrival) >= 0)
    nominal = sim.nominal_diameter_px
    for ident, when, defect in zip(ids[:30].tolist(), arrival[:30].tolist(), defects[:30].tolist()):
        for index, side in ((math.floor(when), -1), (math.ceil(when) + 1, 1)):
            _, truth = sim.frame(index)
            where = np.flatnonzero(truth.ids == ident)
            if len(where):
                assert np.sign(truth.centres[where[0], 0] - 200.0) == side
                ratio = truth.diameters_px[where[0]] / nominal
                assert (ratio < 0.75) if defect == TOO_SMALL else (ratio > 1.25) if defect == TOO_LARGE else (
                    0.75 < ratio < 1.25)
    # No out-of-spec fraction: the frames are those of before.
    assert np.array_equal(FlowSimulator(160, 120, 8, 1, 5.0).frame(30)[0].image,
                          FlowSimulator(160, 120, 8, 1, 5.0, out_of_spec=0.0).frame(30)[0].image)


@pytest.mark.parametrize("station, message", [
    ({"line": [0.5, 0, 0.5, 1], "downstream_mm": 10}, "exactly one of line and downstream_mm"),
    ({"downstream_mm": 100}, "downstream_mm needs a calibration in mm"),
    ({"line": [0.5, 0, 0.5, 1.5]}, "every value in [0, 1]"),
])
def test_bad_station_configs_are_refused(station, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TallyConfig.model_validate({"rejects": [station]})


def test_a_station_outside_the_frame_rejects_nothing_and_says_so(caplog):
    config = TallyConfig.model_validate({"rejects": [{"name": "far", "line": [900, 0, 900, 100], "normalized": False}]})
    sim = FlowSimulator(320, 240, 12, 0, 4.0, 2, 2.0, out_of_spec=0.5)
    tally = CameraTally(config, "cam0", sim.support()[1])
    scene, truth = sim.frame(50)
    tally.observe(Frame(scene.image, 50, 1e9, "cam0", scene.count, truth), _exact_result(scene, 320, 240))
    assert not tally.rejects.stations
    assert "reject station far: line (900.0, 0.0, 900.0, 100.0) lies outside the 320x240 frame" in caplog.text


def test_run_refuses_a_bad_station_in_one_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(json.dumps({"stream": {"tally": {"rejects": [{"downstream_mm": 50}]}}}))
    proc = subprocess.run([sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", "sim:",
                           "--metrics-port", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "downstream_mm needs a calibration in mm" in lines[0], proc.stderr


def test_run_publishes_reject_messages(tmp_path):
    pub = _free_port()
    config = tmp_path / "rejects.yaml"
    tally = {"calibration": {"px_per_mm": 2}, "specs": {"diameter": {"min": 16, "max": 27}},
             "rejects": [{"name": "jet", "downstream_mm": 20, "decide_after": 3}]}
    config.write_text(json.dumps({"stream": {"tally": tally}}))
    source = "sim:?flow=1&objects=8&distractors=0&width=192&height=144&fps=8&speed=8&px_per_mm=2&out_of_spec=0.5"
    cmd = [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", source,
           "--publish", f"tcp://127.0.0.1:{pub}", "--control", f"tcp://127.0.0.1:{_free_port()}",
           "--metrics-port", "0", "--max-frames", "50", "--cache-dir", str(tmp_path)]
    code, stderr, messages = run_and_collect(cmd, f"tcp://127.0.0.1:{pub}", b"persense/cam0/")
    rejects = [header for topic, header in messages if topic == b"persense/cam0/reject"]
    assert code == 0, stderr[-2000:]
    assert rejects and all(REJECT_KEYS <= set(doc) and doc["station"] == "jet" and doc["camera"] == "cam0"
                           for doc in rejects)
    assert all(doc["due_wall"] > doc["decided_wall"] or doc["missed"] for doc in rejects)


def test_the_subscriber_decodes_reject_messages():
    from streamer.stream.messages import reject_message
    from streamer.stream.rejects import RejectEvent
    from streamer.subscriber import ProtocolError, RejectMessage, decode_message

    event = RejectEvent("cam0", 12, 7, "jet", [{"measure": "diameter", "value": 9.5, "min": 10.0, "max": 14.0,
                                                 "unit": "mm"}], 100.0, 101.5, 55.5, 40, False, 101.52, 20)
    msg = decode_message(reject_message("cam0", event.to_dict()))
    assert isinstance(msg, RejectMessage) and (msg.station, msg.track_id, msg.pulse_ms, msg.missed) == ("jet", 7, 40,
                                                                                                       False)
    assert msg.due_wall == 101.5 and msg.reasons[0]["measure"] == "diameter"
    for broken in ({**event.to_dict(), "v": 2}, {**event.to_dict(), "missed": "no"}, {"v": 1}):
        with pytest.raises(ProtocolError):
            decode_message([b"persense/cam0/reject", json.dumps(broken).encode()])


def test_run_refuses_a_station_outside_a_simulators_frame(tmp_path):
    config = tmp_path / "far.yaml"
    config.write_text(json.dumps({"stream": {"tally": {"rejects": [
        {"name": "far", "line": [700, 0, 700, 100], "normalized": False}]}}}))
    proc = subprocess.run([sys.executable, "-m", "streamer", "run", "--config", str(config), "--source",
                           "sim:?width=640&height=480", "--metrics-port", "0"], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "camera cam0: reject station far: line (700.0, 0.0, 700.0, 100.0) lies outside the 640x480 frame" in lines[0]
