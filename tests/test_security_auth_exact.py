"""The authenticator at work (streamer.stream.security's Authentication and start_authentication), from the
attacker's side: anonymous and unknown clients on real sockets (127.0.0.1, one process) are refused, counted under
their socket's name and never answered; an authorized client is served under its key file's name. Each test takes
well under a second, so tools/mutation.py runs them for every mutant of the module.
"""

from __future__ import annotations

import logging
import threading

import pytest
import zmq

from curve_keys import key_set, refused
from streamer.stream import security
from streamer.stream.config import StreamConfig
from streamer.stream.security import Authentication, CurveServer, apply_options, client_socket_options, \
    start_authentication
from waiting import wait_until

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CURVE")


@pytest.fixture
def keys(tmp_path):
    return key_set(tmp_path)


def _stream(**fields) -> StreamConfig:
    return StreamConfig.model_validate(fields)


def _curve_stream(keys, **fields) -> StreamConfig:
    return _stream(security={"server_key": str(keys / "server" / "server.key_secret"),
                             "authorized_keys": str(keys / "authorized")}, **fields)


def _client(ctx, endpoint, options=None):
    """A REQ socket that has sent b"hello" to `endpoint` (with CURVE client options, or anonymous), unless the server
    refused it first: a refused handshake drops the socket's only connection, and a REQ socket without one would
    wait for one for good (on a busy machine this thread may come to send after the refusal)."""
    sock = ctx.socket(zmq.REQ)
    apply_options(sock, {zmq.LINGER: 0, **(options or {})})
    sock.connect(endpoint)
    try:
        sock.send(b"hello", zmq.NOBLOCK)
    except zmq.Again:
        pass  # refused already: nothing to send it on
    return sock


def _stopped_within(auth: Authentication, seconds: float) -> bool:
    """Stop `auth` -> whether it stopped within `seconds`, failing the test instead of hanging or crashing it: its
    watcher first (told by _stop, it ends within one 200 ms poll; stop() would close its socket under it, which
    aborts the process, where it does not), then the rest from a helper thread (pyzmq's stop waits forever once its
    authenticator thread died, of an exception naming a client)."""
    if auth._thread.is_alive():
        auth._stop.set()
        auth._thread.join(seconds)
        if auth._thread.is_alive():
            return False
    stopper = threading.Thread(target=auth.stop, name="test-auth-stop", daemon=True)
    stopper.start()
    stopper.join(seconds)
    return not stopper.is_alive()


def test_only_authorized_clients_are_served_by_name_and_the_others_are_counted(keys):
    """Through start_authentication, as the processor starts it: the authenticator guards the sockets of the context
    it was given and reports each refusal to the callback it was given."""
    ctx = zmq.Context()
    refusals = []
    auth = start_authentication(ctx, _curve_stream(keys), refusals.append)
    clients = []
    try:
        server = ctx.socket(zmq.REP)
        server.setsockopt(zmq.LINGER, 0)
        apply_options(server, auth.curve.socket_options())
        port = server.bind_to_random_port("tcp://127.0.0.1")
        auth.watch({"control": server, "publish": None})
        endpoint = f"tcp://127.0.0.1:{port}"
        server_public = keys / "server" / "server.key"
        # Each wait also ends when the server got the request, so that a refusal that never comes fails at once.
        clients.append(_client(ctx, endpoint))  # anonymous: fails the CURVE handshake
        assert wait_until(lambda: refusals or server.poll(0), 20) and refusals == ["control"], refusals
        stranger = client_socket_options(keys / "stranger" / "stranger.key_secret", server_public)
        clients.append(_client(ctx, endpoint, stranger))  # a good key that is not in the folder
        assert wait_until(lambda: len(refusals) >= 2 or server.poll(0), 20) and refusals == ["control", "control"], \
            refusals
        plc = client_socket_options(keys / "clients" / "plc.key_secret", server_public)
        clients.append(_client(ctx, endpoint, plc))
        assert server.poll(10_000)
        frame = server.recv(copy=False)
        assert frame.bytes == b"hello" and frame.get("User-Id") == "plc"
        server.send(b"welcome")
        assert clients[-1].poll(10_000) and clients[-1].recv() == b"welcome"
        assert not clients[0].poll(100) and not clients[1].poll(100) and refusals == ["control", "control"]
    finally:
        stopped = _stopped_within(auth, 10)
        if stopped:  # else the stuck stop still uses the sockets: left to the process's end
            ctx.destroy(linger=0)  # the server and the clients too, also when an assertion failed
    assert stopped, "the authenticator did not stop"
    assert not auth._thread.is_alive()


def test_the_authenticator_logs_as_persense_auth_and_its_watcher_is_a_named_daemon_thread(keys, caplog):
    ctx = zmq.Context()
    auth = Authentication(ctx, CurveServer.load(keys / "server" / "server.key_secret", keys / "authorized"),
                          lambda name: None)
    server = ctx.socket(zmq.REP)
    try:
        with caplog.at_level(logging.DEBUG, logger="persense.auth"):
            auth.start()
        assert f"Configure curve: persense[{keys / 'authorized'}]" in [
            r.getMessage() for r in caplog.records if r.name == "persense.auth"]
        auth.watch({"control": server})
        assert (auth._thread.name, auth._thread.daemon) == ("auth-monitor", True)
        assert "auth-monitor" in [thread.name for thread in threading.enumerate()]
    finally:
        stopped = _stopped_within(auth, 10)
        if stopped:  # else the stuck stop still uses the sockets: left to the process's end
            ctx.destroy(linger=0)
    assert stopped and not auth._thread.is_alive(), "the authenticator or its watcher did not stop"


def _watch_once(auth, monkeypatch, caplog, error) -> bool:
    """Run the watcher (in a thread of its own, as in use) over one event whose reading raises `error`, until it has
    said something or ended, then tell it to stop -> whether it stopped within 5 s (a watcher that blocks for good
    fails the test instead of hanging it)."""
    def unreadable(frames):
        raise error

    monkeypatch.setattr(security, "parse_monitor_message", unreadable)
    ctx = zmq.Context.instance()
    reader, writer = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    reader.bind("inproc://watch-test")
    writer.connect("inproc://watch-test")
    writer.send_multipart([b"\x00\x01", b"tcp://x"])
    auth._monitors = {reader: "control"}
    watcher = threading.Thread(target=auth._watch, name="test-watcher", daemon=True)
    watcher.start()
    wait_until(lambda: not watcher.is_alive() or any(r.name == security.log.name for r in caplog.records), 20)
    auth._stop.set()
    watcher.join(5)
    if watcher.is_alive():
        return False  # its socket stays with it: closing a socket under a thread that uses it is undefined
    reader.close(0)
    writer.close(0)
    return True


@pytest.mark.parametrize("error, expected", [
    (zmq.ZMQError(zmq.EAGAIN), [("DEBUG", "auth monitor: " + zmq.strerror(zmq.EAGAIN))]),
    (ValueError("garbled"), [("ERROR", "auth monitor: reading an event failed")]),
    (zmq.ZMQError(zmq.ETERM), []),  # the context is closing: the watcher ends at once, nothing to say
])
def test_the_watcher_survives_an_unreadable_event_and_says_so(keys, caplog, monkeypatch, error, expected):
    refusals = []
    auth = Authentication(zmq.Context.instance(), CurveServer.load(keys / "server" / "server.key_secret",
                                                                   keys / "authorized"), refusals.append)
    with caplog.at_level(logging.DEBUG, logger="streamer.stream.security"):
        assert _watch_once(auth, monkeypatch, caplog, error), "the watcher did not stop"
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "streamer.stream.security"] == expected
    assert refusals == []


def test_start_authentication_checks_exposure_and_starts_only_with_curve(keys, caplog):
    ctx = zmq.Context()
    stopped = True
    try:
        assert start_authentication(ctx, _stream(), lambda name: None) is None
        exposed = _stream(publish={"endpoint": "tcp://0.0.0.0:5556"})
        assert refused(start_authentication, ctx, exposed, lambda name: None).startswith(
            "refusing to bind publish tcp://0.0.0.0:5556 beyond")
        # A publisher that connects binds nothing: only the control socket is judged.
        connecting = _stream(publish={"endpoint": "tcp://10.0.0.9:5556", "connect": True})
        assert start_authentication(ctx, connecting, lambda name: None) is None
        insecure = _stream(control={"endpoint": "tcp://0.0.0.0:5557"}, allow_insecure=True)
        assert start_authentication(ctx, insecure, lambda name: None) is None
        assert [m[:36] for m in caplog.messages] == ["INSECURE: control tcp://0.0.0.0:5557"]
        caplog.clear()
        curve = _curve_stream(keys, publish={"endpoint": "tcp://0.0.0.0:5556"})
        with caplog.at_level(logging.INFO, logger="streamer.stream.security"):
            auth = start_authentication(ctx, curve, lambda name: None)
        try:
            assert isinstance(auth, Authentication) and auth.curve.authorized_keys == keys / "authorized"
            assert auth._authenticator.is_alive()
            assert caplog.messages == [f"CURVE on: clients need a key from {keys / 'authorized'}"]
        finally:
            stopped = _stopped_within(auth, 10)
    finally:
        if stopped:  # else the stuck stop still uses the sockets: left to the process's end
            ctx.destroy(linger=0)
    assert stopped, "the authenticator did not stop"
