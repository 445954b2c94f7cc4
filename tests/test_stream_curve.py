"""CURVE on control and results: anonymous and unknown clients get nothing and are counted; a client with
an authorized key is served. Protected mode: exposed sockets without CURVE refuse to start."""

from __future__ import annotations

import json
import logging
import stat

import pytest
import zmq

from streamer.cli import main
from streamer.errors import UserError
from streamer.stream.endpoints import check_endpoint, is_loopback
from streamer.stream.security import apply_options, check_exposure, client_socket_options, write_keys
from streamer.subscriber import ResultMessage, Subscriber
from test_stream_doubles import LiveSource, blob_frame
from test_stream_loop import _config, _processor
from waiting import wait_until

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CURVE")
# A whole processor run (7-15 s) reaching every function of security.py: mutation testing leaves it out for that
# module's mutants, which tests/test_security_exact.py measures exactly (docs/testing.md, "Mutation testing").
measured_exactly_elsewhere = pytest.mark.not_run_for_mutants_of("streamer.stream.security")


@pytest.fixture
def keys(tmp_path):
    """server pair, an authorized client (plc) and a stranger whose key is not in the folder."""
    assert main(["keys", str(tmp_path / "server"), "--name", "server"]) == 0
    assert main(["keys", str(tmp_path / "clients"), "--name", "plc"]) == 0
    assert main(["keys", str(tmp_path / "stranger"), "--name", "stranger"]) == 0
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    (authorized / "plc.key").write_bytes((tmp_path / "clients" / "plc.key").read_bytes())
    return tmp_path


def test_keys_are_pyzmq_certificates_with_an_owner_only_secret(tmp_path, capsys):
    assert main(["keys", str(tmp_path / "k"), "--name", "line1"]) == 0
    secret = tmp_path / "k" / "line1.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret" in secret.read_text() and "secret" not in (tmp_path / "k" / "line1.key").read_text()
    assert main(["keys", str(tmp_path / "k"), "--name", "line1"]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "k").iterdir() if p.name.startswith(".")] == []


def _curve_processor(tmp_path, keys):
    config = _config(tmp_path, [{"uri": "x", "camera_id": "cam0"}])
    config.stream.security.server_key = keys / "server" / "server.key_secret"
    config.stream.security.authorized_keys = keys / "authorized"
    return _processor(config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])})


def _control_client(ctx, endpoint, options=None):
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    apply_options(sock, options or {})
    sock.connect(endpoint)
    sock.send(b'{"cmd": "status"}')
    return sock


@measured_exactly_elsewhere
def test_curve_control_and_results_serve_only_authorized_clients(tmp_path, keys):
    proc = _curve_processor(tmp_path, keys)
    proc.start()
    ctx = zmq.Context()
    server_public = keys / "server" / "server.key"
    known = client_socket_options(keys / "clients" / "plc.key_secret", server_public)
    unknown = client_socket_options(keys / "stranger" / "stranger.key_secret", server_public)
    denied = lambda socket: proc.metrics.auth_denied.labels(socket)._value.get()  # noqa: E731
    sockets = []
    try:
        # Control: anonymous, then an unknown key: both refused in the handshake, counted, never answered.
        sockets.append(_control_client(ctx, proc.control.endpoint))
        assert wait_until(lambda: denied("control") >= 1, 20), "the anonymous control client was not refused"
        sockets.append(_control_client(ctx, proc.control.endpoint, unknown))
        assert wait_until(lambda: denied("control") >= 2, 20), "the unknown control key was not refused"
        assert not any(s.poll(300) for s in sockets), "a refused client got a reply"
        assert proc.metrics.control_requests.labels("ok")._value.get() == 0, "a refused request was handled"
        served = _control_client(ctx, proc.control.endpoint, known)
        sockets.append(served)
        assert served.poll(10_000) and json.loads(served.recv())["ok"]

        # Results: the same for subscribers.
        with Subscriber(proc.publisher.endpoint, status=False) as anonymous:
            assert wait_until(lambda: denied("publish") >= 1, 20), "the anonymous subscriber was not refused"
            assert anonymous.receive(0.3) is None
        with Subscriber(proc.publisher.endpoint, status=False, socket_options=unknown) as stranger:
            assert wait_until(lambda: denied("publish") >= 2, 20), "the unknown subscriber was not refused"
            assert stranger.receive(0.3) is None
        with Subscriber(proc.publisher.endpoint, status=False, socket_options=known) as plc:
            assert isinstance(plc.receive(20.0), ResultMessage)
    finally:
        for sock in sockets:
            sock.close()
        ctx.destroy()
        proc.stop()


@measured_exactly_elsewhere
def test_subscribe_cli_with_client_keys_receives_results(tmp_path, keys, capsys):
    proc = _curve_processor(tmp_path, keys)
    proc.start()
    try:
        code = main(["subscribe", "--endpoint", proc.publisher.endpoint, "--max-messages", "2", "--timeout", "20",
                     "--client-key", str(keys / "clients" / "plc.key_secret"),
                     "--server-public-key", str(keys / "server" / "server.key")])
    finally:
        proc.stop()
    assert code == 0
    assert "cam0: 2 result(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args, why", [
    (["--client-key", "x.key_secret"], "both"),
    (["--client-key", "missing.key_secret", "--server-public-key", "s.key"], "not found"),
])
def test_subscribe_cli_key_mistakes_are_one_line(args, why, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["subscribe", "--timeout", "0.1", *args]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1


def test_bad_server_keys_are_one_line(tmp_path, keys):
    proc_config = _config(tmp_path, [{"uri": "x", "camera_id": "cam0"}])
    proc_config.stream.security.server_key = keys / "server" / "server.key"  # the public half
    proc_config.stream.security.authorized_keys = keys / "authorized"
    proc = _processor(proc_config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])})
    with pytest.raises(UserError, match="no secret key"):
        proc.start()
    proc_config.stream.security.server_key = keys / "server" / "server.key_secret"
    proc_config.stream.security.authorized_keys = keys / "server" / "nothing-here"
    proc = _processor(proc_config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])})
    with pytest.raises(UserError, match="authorized keys folder not found"):
        proc.start()


# -- protected mode -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5556", True), ("tcp://localhost:1", True), ("tcp://[::1]:5556", True),
    ("ipc:///tmp/persense", True), ("tcp://*:5556", False), ("tcp://0.0.0.0:5556", False),
    ("tcp://10.0.0.5:5556", False), ("tcp://eth0:5556", False),
])
def test_loopback_is_told_apart(endpoint, local):
    assert is_loopback(check_endpoint(endpoint)) is local


def test_exposed_sockets_need_curve_or_an_explicit_logged_opt_out(caplog):
    exposed = {"publish": "tcp://0.0.0.0:5556", "control": "tcp://127.0.0.1:5557"}
    with pytest.raises(UserError, match="persense keys"):
        check_exposure(exposed, curve=False, allow_insecure=False)
    check_exposure(exposed, curve=True, allow_insecure=False)
    with caplog.at_level(logging.WARNING):
        check_exposure(exposed, curve=False, allow_insecure=True)
    assert "INSECURE" in caplog.text and "publish tcp://0.0.0.0:5556" in caplog.text


def test_run_refuses_an_exposed_socket_without_curve_in_one_line(capsys):
    assert main(["run", "--publish", "tcp://0.0.0.0:0", "--max-frames", "1", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to bind publish tcp://0.0.0.0:0" in err and "persense keys" in err and err.count("\n") == 1


@measured_exactly_elsewhere
def test_the_example_subscriber_with_client_keys_receives_results(tmp_path, keys):
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "subscriber.py"
    proc = _curve_processor(tmp_path, keys)
    proc.start()
    try:
        done = subprocess.run([sys.executable, str(example), proc.publisher.endpoint, "--max", "2",
                               "--client-key", str(keys / "clients" / "plc.key_secret"),
                               "--server-public-key", str(keys / "server" / "server.key")],
                              capture_output=True, text=True, timeout=60)
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr
    assert "2 results" in done.stdout


def test_run_flags_reach_the_security_settings(tmp_path, keys):
    from streamer.cli import build_parser
    from streamer.cli.run import apply_flags
    from streamer.config import load_config

    args = build_parser().parse_args(["run", "--server-key", str(keys / "server" / "server.key_secret"),
                                      "--authorized-keys", str(keys / "authorized"), "--insecure"])
    stream = apply_flags(load_config(None), args).stream
    assert stream.security.server_key == keys / "server" / "server.key_secret"
    assert stream.security.authorized_keys == keys / "authorized" and stream.allow_insecure


@measured_exactly_elsewhere
def test_persense_run_with_curve_flags_publishes_and_exits_0(tmp_path, keys, capsys):
    code = main(["run", "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*", "--metrics-port", "0",
                 "--max-frames", "2", "--cache-dir", str(tmp_path / "cache"),
                 "--server-key", str(keys / "server" / "server.key_secret"),
                 "--authorized-keys", str(keys / "authorized")])
    assert code == 0, capsys.readouterr().err
