"""The Modbus TCP output, read by pymodbus's own client: the register map, the coil pulse, refusals."""

from __future__ import annotations

import socket
import time

import pytest
from pymodbus.client import ModbusTcpClient

from streamer.errors import UserError
from streamer.outputs.config import CameraOutputs, ModbusConfig, modbus_layout
from streamer.outputs.modbus import ModbusOutput, camera_registers
from streamer.outputs.figures import CameraFigures
from streamer.stream.metrics import StreamMetrics
from tests.waiting import wait_until


def _u32(registers: list[int], offset: int, high_first: bool = True) -> int:
    high, low = registers[offset:offset + 2] if high_first else registers[offset:offset + 2][::-1]
    return high << 16 | low


def _reject(track_id: int, due_mono: float, pulse_ms: int = 150, missed: bool = False) -> dict:
    return {"v": 1, "camera": "cam1", "frame_id": 40, "track_id": track_id, "station": "gate",
            "reasons": [{"measure": "diameter", "value": 41.5, "min": 25.6, "max": 38.4, "unit": "mm"}],
            "decided_wall": time.time(), "due_wall": 1767225600.25, "due_mono": due_mono, "pulse_ms": pulse_ms,
            "missed": missed}


@pytest.fixture
def served():
    metrics = StreamMetrics(["cam0", "cam1"])
    config = ModbusConfig(enabled=True, port=0)
    layout = modbus_layout([("cam0", CameraOutputs()), ("cam1", CameraOutputs())], config)
    output = ModbusOutput(config, layout, metrics)
    output.start()
    client = ModbusTcpClient("127.0.0.1", port=output.port)
    assert client.connect()
    yield output, client, metrics
    client.close()
    output.stop()


def test_the_registers_carry_each_camera_s_figures_in_the_documented_places(served):
    output, client, _ = served
    output.offer("cam1", "result", {"seq": 70, "count": 12, "match_quality": 0.8734, "passed_total": 70_001})
    output.offer("cam1", "tally", {"passed_total": 69_990, "out_of_spec_total": 9})  # an older total: kept back
    output.offer("cam1", "status", {"event": "heartbeat", "state": "streaming"})
    output.offer("cam0", "result", {"seq": 3, "count": 5, "match_quality": 0.5})
    output.offer("cam1", "reject", _reject(123_456, time.monotonic() - 60, missed=True))
    cam1 = client.read_holding_registers(32, count=21).registers
    assert _u32(cam1, 0) == 12 and _u32(cam1, 2) == 70_001 and _u32(cam1, 4) == 9 and _u32(cam1, 6) == 71
    assert _u32(cam1, 8) == 1 and _u32(cam1, 10) == 1 and _u32(cam1, 12) == 123_456
    assert _u32(cam1, 14) == 1767225600 and cam1[16] == 250
    assert cam1[17] == 873 and cam1[18] == 2 and cam1[19] == 150 and cam1[20] == 1
    cam0 = client.read_holding_registers(0, count=21).registers
    assert _u32(cam0, 0) == 5 and _u32(cam0, 6) == 4 and cam0[20] == 0
    assert client.read_input_registers(32, count=21).registers == cam1  # input registers mirror them


def test_the_map_is_read_only(served):
    output, client, _ = served
    assert client.write_register(0, 7).isError()
    assert client.write_coil(1, True).isError()
    assert client.read_holding_registers(0, count=2).registers == [0, 0]


def test_a_reject_pulses_its_station_s_coil_at_its_due_time(served):
    output, client, metrics = served
    due = time.monotonic() + 0.4
    output.offer("cam1", "reject", _reject(7, due, pulse_ms=600))  # long enough for a loaded machine's polls
    assert client.read_coils(0, count=2).bits[:2] == [False, False]
    assert wait_until(lambda: client.read_coils(1).bits[0], timeout=5, interval=0.01)
    seen_on = time.monotonic()
    assert seen_on >= due  # not before its time
    assert client.read_coils(0).bits[0] is False  # cam0's coil stays still
    assert wait_until(lambda: not client.read_coils(1).bits[0], timeout=5, interval=0.01)
    assert metrics.registry.get_sample_value("persense_output_messages_total", {"output": "modbus"}) >= 1


def test_a_reject_arriving_after_its_pulse_is_counted_late_not_pulsed(served):
    output, client, metrics = served
    output.offer("cam1", "reject", _reject(8, time.monotonic() - 5.0, pulse_ms=100))
    assert wait_until(lambda: metrics.registry.get_sample_value(
        "persense_output_dropped_total", {"output": "modbus", "reason": "late"}) == 1)
    assert client.read_coils(1).bits[0] is False
    assert _u32(client.read_holding_registers(32 + 8, count=2).registers, 0) == 1  # still counted as a reject


def test_a_reject_without_its_fields_is_counted_unreadable(served):
    output, client, metrics = served
    output.offer("cam1", "reject", {"v": 1, "track_id": 3})
    assert metrics.registry.get_sample_value("persense_output_dropped_total",
                                             {"output": "modbus", "reason": "unreadable"}) == 1
    assert _u32(client.read_holding_registers(32 + 8, count=2).registers, 0) == 0


def test_low_first_word_order_swaps_the_words():
    figures = CameraFigures(count=0x0001_0002)
    assert camera_registers(figures, 0, high_first=True)[:2] == [1, 2]
    assert camera_registers(figures, 0, high_first=False)[:2] == [2, 1]
    assert camera_registers(CameraFigures(passed_total=(1 << 32) + 5), 0)[2:4] == [0, 5]  # wraps like a counter


def test_a_port_in_use_is_one_line():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        config = ModbusConfig(enabled=True, port=held.getsockname()[1])
        output = ModbusOutput(config, {"cam0": (0, 0)}, StreamMetrics(["cam0"]))
        with pytest.raises(UserError, match="modbus: cannot serve on 127.0.0.1") as error:
            output.start()
        assert "\n" not in str(error.value)
        assert not output.alive()


def test_beyond_loopback_needs_the_explicit_opt_out():
    with pytest.raises(UserError, match="allow_remote"):
        ModbusOutput(ModbusConfig(enabled=True, host="0.0.0.0"), {"cam0": (0, 0)}, StreamMetrics(["cam0"]))


def test_overlapping_blocks_and_shared_coils_are_refused():
    config = ModbusConfig(enabled=True)
    with pytest.raises(ValueError, match="overlap"):
        modbus_layout([("a", CameraOutputs()), ("b", CameraOutputs(modbus_base=10))], config)
    with pytest.raises(ValueError, match="share a coil"):
        modbus_layout([("a", CameraOutputs()), ("b", CameraOutputs(modbus_coil=0))], config)
    assert modbus_layout([("a", CameraOutputs(modbus=False)), ("b", CameraOutputs())], config) == {"b": (32, 1)}
