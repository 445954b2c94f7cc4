"""The fan-out from the publisher to the plant's outputs: every message, as (camera, kind, payload), synthetic
reject messages of the documented schema among them; an output's failure or backlog costs nothing else."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import zmq
from pymodbus.client import ModbusTcpClient

from streamer.outputs.config import CameraOutputs, ModbusConfig, MqttConfig, OutputsConfig
from streamer.outputs.fanout import OutputFanout, message_kind
from streamer.outputs.mqtt import HANDOFF_SIZE, MqttOutput
from streamer.outputs.plant import PlantOutputs
from streamer.sources.base import Frame
from streamer.stream.config import StreamConfig
from streamer.stream.metrics import StreamMetrics
from streamer.stream.publisher import Publisher
from streamer.types import SegmentationResult
from tests.waiting import wait_until


class Recorder:
    def __init__(self, name="recorder", fail=False):
        self.name, self.fail, self.seen, self.lock = name, fail, [], threading.Lock()

    def offer(self, camera, kind, payload):
        if self.fail:
            raise RuntimeError("this output is broken")
        with self.lock:
            self.seen.append((camera, kind, payload))

    def kinds(self):
        with self.lock:
            return [kind for _, kind, _ in self.seen]


def reject_parts(camera: str, track_id: int, due_mono: float, missed: bool = False) -> list[bytes]:
    """A reject message as the processor builds it: [topic, header JSON] (docs/stream-protocol.md)."""
    payload = {"v": 1, "camera": camera, "frame_id": 101, "track_id": track_id, "station": "gate",
               "reasons": [{"measure": "diameter", "value": 21.0, "min": 25.6, "max": 38.4, "unit": "mm"}],
               "decided_wall": time.time(), "due_wall": time.time() + (due_mono - time.monotonic()),
               "due_mono": due_mono, "pulse_ms": 600, "missed": missed}
    return [f"persense/{camera}/reject".encode(), json.dumps(payload).encode()]


def _publisher(fanout, cameras=("cam0",)):
    context = zmq.Context()
    config = StreamConfig().publish.model_copy(update={"endpoint": "tcp://127.0.0.1:*", "heartbeat_s": 0.05})
    statuses = lambda: {camera: {"state": "streaming"} for camera in cameras}  # noqa: E731
    publisher = Publisher(context, config, StreamMetrics(list(cameras)), statuses, fanout=fanout)
    return context, publisher


def test_outputs_see_results_tallies_statuses_and_rejects_as_camera_kind_payload():
    recorder, other = Recorder(), Recorder("other")
    context, publisher = _publisher(OutputFanout({"cam0": [recorder], "cam1": [other]}), ("cam0", "cam1"))
    publisher.start()
    try:
        result = SegmentationResult(40, 30, [], 0.0, match_quality=0.75)
        result.tally = {"passed_total": 12, "tracks": 3}
        publisher.submit(Frame(np.zeros((30, 40, 3), np.uint8), 5, 1000.25, "cam0"), result, "support-a")
        tally = b'{"schema": "persense.tally/1", "passed_total": 12}'
        publisher.submit_message("cam0", [b"persense/cam0/tally", tally])
        publisher.submit_message("cam0", reject_parts("cam0", 77, time.monotonic() + 1))
        publisher.submit_status("cam0", {"event": "state", "state": "stalled"})
        assert wait_until(lambda: {"result", "tally", "reject"} <= set(recorder.kinds())
                          and recorder.kinds().count("status") >= 2)
    finally:
        publisher.stop()
        context.term()
    by_kind = {}
    for camera, kind, payload in recorder.seen:
        assert camera == "cam0"
        by_kind.setdefault(kind, []).append(payload)
    assert by_kind["result"] == [{"v": 1, "camera": "cam0", "seq": 0, "frame_index": 5, "capture_ts": 1000.25,
                                  "support_id": "support-a", "count": 0, "match_quality": 0.75, "passed_total": 12,
                                  "tracks": 3}]
    assert by_kind["tally"] == [{"schema": "persense.tally/1", "passed_total": 12}]
    assert by_kind["reject"][0]["track_id"] == 77 and by_kind["reject"][0]["reasons"][0]["measure"] == "diameter"
    assert {"event": "state", "state": "stalled"} in by_kind["status"]
    assert any(p.get("event") == "heartbeat" for p in by_kind["status"])
    assert all(camera == "cam1" and kind == "status" for camera, kind, _ in other.seen)  # only its own camera


def test_a_broken_output_costs_the_others_and_zeromq_nothing():
    broken, working = Recorder("broken", fail=True), Recorder()
    context, publisher = _publisher(OutputFanout({"cam0": [broken, working]}))
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/reject")
    sub.connect(publisher.endpoint)
    publisher.start()
    try:
        assert wait_until(lambda: publisher.subscriptions >= 1)
        for track in range(5):
            publisher.submit_message("cam0", reject_parts("cam0", track, time.monotonic()))
        assert wait_until(lambda: working.kinds().count("reject") == 5)
        got = [json.loads(sub.recv_multipart()[1])["track_id"] for _ in range(5) if sub.poll(5000)]
        assert got == list(range(5))
    finally:
        sub.close(0)
        publisher.stop()
        context.term()


def test_unreadable_built_messages_are_skipped():
    assert message_kind([b"persense/cam0/reject", b"{not json"]) is None
    assert message_kind([b"persense/cam0/reject", b"[1, 2]"]) is None
    assert message_kind([b"persense/cam0/reject"]) is None
    assert message_kind([b"persense/cam0/reject", b'{"v": 1}']) == ("reject", {"v": 1})


def test_a_synthetic_reject_through_the_publisher_pulses_the_modbus_coil_of_its_camera():
    metrics = StreamMetrics(["cam0", "cam1"])
    config = OutputsConfig(modbus=ModbusConfig(enabled=True, port=0))
    plant = PlantOutputs(config, [("cam0", CameraOutputs()), ("cam1", CameraOutputs(modbus_coil=9))], metrics)
    plant.start()
    context, publisher = _publisher(plant.fanout, ("cam0", "cam1"))
    publisher.start()
    modbus = plant.outputs[0]
    client = ModbusTcpClient("127.0.0.1", port=modbus.port)
    try:
        assert client.connect()
        due = time.monotonic() + 0.5
        publisher.submit_message("cam1", reject_parts("cam1", 4242, due))
        publisher.submit_message("cam1", reject_parts("cam1", 4243, time.monotonic() - 1, missed=True))
        assert wait_until(lambda: client.read_coils(9).bits[0], timeout=5, interval=0.01)
        assert time.monotonic() >= due
        assert wait_until(lambda: not client.read_coils(9).bits[0], timeout=5, interval=0.01)
        registers = client.read_holding_registers(32, count=21).registers
        assert registers[8:14] == [0, 2, 0, 1, 0, 4243]  # two rejects, one missed, the last one's track id
        assert registers[20] == 9
        assert plant.status() == {"modbus": {"state": "serving", "port": modbus.port}}
    finally:
        client.close()
        publisher.stop()
        context.term()
        plant.stop()


def test_the_mqtt_hand_off_never_waits_it_drops_and_counts():
    metrics = StreamMetrics(["cam0"])
    output = MqttOutput(MqttConfig(enabled=True), metrics)  # not started: nothing drains its hand-off queue
    for seq in range(HANDOFF_SIZE + 25):
        output.offer("cam0", "tally", {"seq": seq})
    assert metrics.registry.get_sample_value("persense_output_dropped_total",
                                             {"output": "mqtt", "reason": "queue_full"}) == 25
