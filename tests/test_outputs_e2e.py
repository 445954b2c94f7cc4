"""`persense run` on the flow simulator with all three outputs on, read from outside at one moment: MQTT
(Debian's mosquitto), OPC UA (asyncua's client) and Modbus TCP (pymodbus's client) show the counts of the
ZeroMQ messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
import zmq
from cryptography.x509.oid import ExtendedKeyUsageOID
from pymodbus.client import ModbusTcpClient

from streamer.outputs.opcua import APPLICATION_URI
from tests.control_client import ask
from tests.peers.mosquitto import Mosquitto
from tests.stream_capture import ROOT
from tests.test_outputs_modbus import _u32
from tests.test_outputs_mqtt import Subscriber
from tests.test_outputs_opcua import make_certificate, read
from tests.test_stream_e2e import _free_port
from tests.waiting import wait_until

SOURCE = "sim:?flow=1&objects=8&distractors=0&width=192&height=144&fps=8&speed=8&px_per_mm=2"


class _Endpoint:
    """What read() needs of an OPC UA output: its endpoint."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint


def _drain(sub: zmq.Socket, into: list, quiet_s: float) -> None:
    """Read until nothing has come for quiet_s (bounded: 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sub.poll(int(quiet_s * 1000)):
        topic, header, *_ = sub.recv_multipart()
        into.append((topic, json.loads(header)))


@pytest.mark.slow
def test_counts_over_mqtt_opcua_and_modbus_equal_the_zeromq_messages(tmp_path):
    mqtt_port, opcua_port, modbus_port = _free_port(), _free_port(), _free_port()
    publish, control = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    server_files = make_certificate(tmp_path, "server", APPLICATION_URI, ExtendedKeyUsageOID.SERVER_AUTH)
    client_files = make_certificate(tmp_path, "client", "urn:persense:test:client", ExtendedKeyUsageOID.CLIENT_AUTH)
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump({"stream": {
        "tally": {"interval_s": 0.5, "calibration": {"px_per_mm": 2}},
        "outputs": {"mqtt": {"enabled": True, "port": mqtt_port, "prefix": "plant"},
                    "opcua": {"enabled": True, "port": opcua_port, "certificate": str(server_files[0]),
                              "private_key": str(server_files[1]),
                              "credentials": {"username": "scada", "password_env": "TEST_OPCUA_PASSWORD"}}}}}))
    cmd = [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", SOURCE,
           "--count-line", "0.5,0,0.5,1", "--publish", publish, "--control", control, "--metrics-port", "0",
           "--modbus-port", str(modbus_port), "--cache-dir", str(tmp_path), "--status-interval", "0"]
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/")
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.connect(publish)
    messages: list = []
    with Mosquitto(tmp_path, mqtt_port):
        mqtt = Subscriber(mqtt_port, "plant/#")
        env = dict(os.environ, TEST_OPCUA_PASSWORD="plant-pass-31")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                _drain(sub, messages, 0.2)
                tallies = [h for t, h in messages if t.endswith(b"/tally")]
                if tallies and tallies[-1]["passed_total"] >= 3:
                    break
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert ask(control, {"cmd": "pause"})["paused"] is True
            _drain(sub, messages, 1.5)  # the frame in flight, then quiet: this is "the same moment"
            results = [h for t, h in messages if t.endswith(b"/result")]
            tallies = [h for t, h in messages if t.endswith(b"/tally")]
            last, tally = results[-1], tallies[-1]
            assert last["passed_total"] >= 3
            # MQTT: the same messages, the last of each kind equal to ZeroMQ's.
            assert wait_until(lambda: mqtt.payloads("plant/cam0/tally")[-1:] == [tally], timeout=10)
            summary = mqtt.payloads("plant/cam0/result")[-1]
            assert (summary["seq"], summary["count"], summary["passed_total"]) == \
                (last["seq"], last["count"], last["passed_total"])
            assert mqtt.payloads("plant/status")[-1] == {"v": 1, "state": "online"}
            # OPC UA, with the user over Basic256Sha256.
            opcua = read(_Endpoint(f"opc.tcp://127.0.0.1:{opcua_port}/persense/"),
                         ["cam0.Count", "cam0.PassedTotal", "cam0.OutOfSpecTotal", "cam0.Results",
                          "cam0.SourceState"], client_files=client_files, user="scada", password="plant-pass-31")
            assert opcua == {"cam0.Count": last["count"], "cam0.PassedTotal": last["passed_total"],
                             "cam0.OutOfSpecTotal": tally["out_of_spec_total"], "cam0.Results": last["seq"] + 1,
                             "cam0.SourceState": "streaming"}
            # Modbus TCP.
            client = ModbusTcpClient("127.0.0.1", port=modbus_port)
            assert client.connect()
            registers = client.read_holding_registers(0, count=21).registers
            client.close()
            assert (_u32(registers, 0), _u32(registers, 2), _u32(registers, 4), _u32(registers, 6)) == \
                (last["count"], last["passed_total"], tally["out_of_spec_total"], last["seq"] + 1)
            assert registers[18] == 2  # streaming
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            stderr = proc.stderr.read()
            assert "plant-pass-31" not in stderr
            assert wait_until(lambda: mqtt.payloads("plant/status")[-1:] == [{"v": 1, "state": "offline"}])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            mqtt.close()
            sub.close(0)
            context.term()
