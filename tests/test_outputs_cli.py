"""`persense run` with the plant's outputs: flags, configuration, and bad input as one line and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from streamer.cli import build_parser
from streamer.cli.run import apply_flags
from streamer.config import load_config
from streamer.errors import UserError
from tests.peers.mosquitto import Mosquitto
from tests.stream_capture import ROOT
from tests.test_stream_e2e import _free_port


def _args(*argv: str):
    return build_parser().parse_args(["run", *argv])


def _run(*flags: str, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "streamer", "run", "--metrics-port", "0", "--publish", "tcp://127.0.0.1:0",
           "--control", "tcp://127.0.0.1:0", "--max-frames", "3", "--source", "sim:?objects=5&width=96&height=72",
           *flags]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_the_flags_turn_the_outputs_on():
    stream = apply_flags(load_config(None), _args("--mqtt", "broker.plant:8883", "--modbus-port", "1502")).stream
    mqtt = stream.outputs.mqtt
    assert mqtt.enabled and (mqtt.host, mqtt.port) == ("broker.plant", 8883)
    assert stream.outputs.modbus.enabled and stream.outputs.modbus.port == 1502
    assert not stream.outputs.opcua.enabled
    assert apply_flags(load_config(None), _args("--mqtt", "10.0.0.5")).stream.outputs.mqtt.port == 1883
    with pytest.raises(UserError, match="--mqtt needs HOST or HOST:PORT"):
        apply_flags(load_config(None), _args("--mqtt", "broker:abc"))


def test_opcua_without_certificates_or_opt_out_is_one_line(tmp_path):
    with pytest.raises(UserError, match="Basic256Sha256 needs certificate and private_key"):
        apply_flags(load_config(None), _args("--opcua-port", "4841"))


def test_per_camera_settings_and_their_clashes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stream:\n"
                    "  outputs: {modbus: {enabled: true}}\n"
                    "  sources:\n"
                    "    - {uri: 'sim:', camera_id: left, outputs: {modbus_coil: 4}}\n"
                    "    - {uri: 'sim:', camera_id: right, outputs: {modbus_coil: 4}}\n")
    with pytest.raises(UserError, match="share a coil"):
        load_config(path)


def test_a_modbus_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = _run("--modbus-port", str(port))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == [f"persense run: error: modbus: cannot serve on 127.0.0.1:{port}: "
                      "Address already in use"]
    assert "Traceback" not in done.stderr


def test_a_broker_refusing_the_credentials_is_one_line_and_exit_2_without_the_password(tmp_path):
    port = _free_port()
    config = tmp_path / "c.yaml"
    config.write_text("stream:\n  outputs:\n    mqtt:\n      credentials: {username: vision, password_env: PW}\n")
    with Mosquitto(tmp_path, port, users={"vision": "right-8d2"}):
        done = _run("--config", str(config), "--mqtt", f"127.0.0.1:{port}", env=dict(os.environ, PW="wrong-51ab"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"persense run: error: mqtt: the broker 127.0.0.1:{port} refused the connection: ")
    assert "wrong-51ab" not in done.stderr and "Traceback" not in done.stderr
