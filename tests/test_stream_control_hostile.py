"""The control socket under abuse: deep JSON, oversized frames, a thread that dies, and a seeded fuzz run of
thousands of malformed requests against a running processor, which must answer `status` and publish throughout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from streamer.stream.config import ControlConfig
from streamer.stream.control import ControlServer
from streamer.stream.requests import MAX_JSON_DEPTH, json_depth_exceeds
from streamer.subscriber import ResultMessage, Subscriber
from test_stream_doubles import LiveSource, blob_frame
from test_stream_loop import _config, _processor, _request
from tests.peers.control_fuzz import malformed_request
from waiting import wait_until


def _server(ctx: zmq.Context, max_request_bytes: int = 4096) -> ControlServer:
    handlers = {"status": lambda request, frames: {"alive": True}}
    settings = ControlConfig(endpoint="tcp://127.0.0.1:*", max_request_bytes=max_request_bytes)
    server = ControlServer(ctx, settings, handlers)
    server.start()
    return server


def test_json_depth_scan_skips_strings_and_counts_brackets():
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 2)
    assert not json_depth_exceeds(b'{"a": "\\"[[[[[[", "b": [1]}', 2)
    assert json_depth_exceeds(b'{"a": [[1]]}', 2)
    assert json_depth_exceeds(b"[" * (MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)


def test_deeply_nested_json_gets_an_error_reply_and_the_thread_serves_on():
    ctx = zmq.Context()
    server = _server(ctx, max_request_bytes=1024 * 1024)
    try:
        for depth in (1000, 30_000):
            reply = _request(server.endpoint, [b"[" * depth + b"]" * depth])
            assert reply["ok"] is False and "nests deeper" in reply["error"]
        reply = _request(server.endpoint, [b'{"cmd": "status", "x": ' + b'{"a": ' * 900 + b"1" + b"}" * 901])
        assert reply["ok"] is False and "nests deeper" in reply["error"]
        assert _request(server.endpoint, [b'{"cmd": "status"}']) == {"ok": True, "alive": True}
        assert server.alive()
    finally:
        server.stop()
        ctx.destroy()


def test_a_frame_beyond_the_hard_limit_is_dropped_by_zeromq_unread():
    """MAXMSGSIZE is set before the bind, so ZeroMQ drops the connection on the frame's header."""
    ctx = zmq.Context()
    server = _server(ctx)
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    monitor = client.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED)
    try:
        client.connect(server.endpoint)
        client.send_multipart([b"", b'{"cmd": "status"}', b"\0" * (4 * 4096 + 1)])
        events = []
        assert wait_until(lambda: monitor.poll(100) and events.append(recv_monitor_message(monitor)["event"])
                          or zmq.EVENT_DISCONNECTED in events, 20), f"not disconnected: {events}"
        assert _request(server.endpoint, [b'{"cmd": "status"}'])["ok"]  # the server itself serves on
    finally:
        client.disable_monitor()
        monitor.close()
        client.close()
        server.stop()
        ctx.destroy()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_control_thread_that_dies_is_restarted_and_counted():
    ctx = zmq.Context()
    restarts = []

    def die(request, frames):
        raise SystemExit("a failure no handler should let through")

    server = ControlServer(ctx, ControlConfig(endpoint="tcp://127.0.0.1:*"),
                           {"status": lambda request, frames: {}, "die": die}, on_restart=lambda: restarts.append(1))
    server.start()
    client = ctx.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    try:
        assert not server.ensure_running()  # alive: nothing to do
        client.connect(server.endpoint)
        client.send(b'{"cmd": "die"}')
        assert wait_until(lambda: not server.alive(), 20)
        assert server.ensure_running() and restarts == [1] and server.restarts == 1
        assert _request(server.endpoint, [b'{"cmd": "status"}'])["ok"]
    finally:
        client.close()
        server.stop()
        ctx.destroy()


def test_fuzzed_control_requests_never_stop_status_or_publishing(tmp_path):
    """3,000 seeded malformed requests against a running processor: each gets one well-formed error reply,
    `status` answers between them, the control thread never dies, and results are published after."""
    config = _config(tmp_path, [{"uri": "x", "camera_id": "cam0"}])
    proc = _processor(config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])})
    proc.start()
    ctx = zmq.Context()
    client = ctx.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(proc.control.endpoint)
    rng = np.random.default_rng(11)
    limit = config.stream.control.max_request_bytes
    try:
        for i in range(3000):
            frames = malformed_request(rng, limit)
            client.send_multipart(frames)
            assert client.poll(10_000), f"no reply to request {i}: {[f[:40] for f in frames]}"
            reply = json.loads(client.recv())
            assert isinstance(reply.get("ok"), bool), reply
            if reply["ok"]:
                assert "uptime_s" in reply, (frames, reply)  # only `status` may succeed
            else:
                assert isinstance(reply["error"], str) and "\n" not in reply["error"] and len(reply["error"]) < 600
            if i % 250 == 0:
                assert _request(proc.control.endpoint, [b'{"cmd": "status"}'])["ok"]
        assert proc.control.alive() and proc.control.restarts == 0
        assert not proc.worker.paused.is_set()
        with Subscriber(proc.publisher.endpoint, ["cam0"], status=False) as sub:
            assert isinstance(sub.receive(10.0), ResultMessage), "publishing stopped"
        errors = proc.metrics.control_requests.labels("error")._value.get()
        assert errors >= 2900
    finally:
        client.close()
        ctx.destroy()
        proc.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_processor_restarts_a_dead_control_thread_and_counts_it(tmp_path):
    import threading

    config = _config(tmp_path, [{"uri": "x", "camera_id": "cam0"}])
    proc = _processor(config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])})
    proc.start()
    stop = threading.Event()
    waiter = threading.Thread(target=proc.wait, args=(stop,), daemon=True)
    ctx = zmq.Context()
    client = ctx.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    try:
        status = proc.control.handlers["status"]

        def die(request, frames):
            proc.control.handlers["status"] = status  # once
            raise SystemExit("a failure no handler should let through")

        proc.control.handlers["status"] = die
        client.connect(proc.control.endpoint)
        client.send(b'{"cmd": "status"}')
        assert wait_until(lambda: not proc.control.alive(), 20)
        waiter.start()  # the processor's wait loop is the watchdog
        restarts = proc.metrics.control_restarts._value.get
        assert wait_until(lambda: restarts() == 1, 20), "the control thread was not restarted"
        assert _request(proc.control.endpoint, [b'{"cmd": "status"}'])["ok"]
        assert proc.health()[0]
        assert "persense_control_restarts_total 1.0" in proc.metrics.exposition().decode()
    finally:
        stop.set()
        if waiter.is_alive():
            waiter.join(5)
        client.close()
        ctx.destroy()
        proc.stop()
