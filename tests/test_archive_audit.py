"""The audit trail: a support change from the console with a named token and one over CURVE with a named key both
appear in the archive's index and on the bus (persense/<camera>/audit), with their names; and so do pause, resume
and mark. Against `persense run` on the simulator as a real process; every socket on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from benchmarks.soak import free_port
from console_helpers import HEADER, get_json, http, multipart
from streamer.archive.reader import ArchiveReader
from streamer.cli import main
from streamer.simulator import ConveyorSimulator
from streamer.stream.security import apply_options, client_socket_options
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "alice-console-token-0123456789"
pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq was built without CURVE")


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)[1].tobytes()


def _ask(ctx, endpoint: str, options: dict, request: dict, *frames: bytes) -> dict:
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    apply_options(sock, options)
    sock.connect(endpoint)
    try:
        sock.send_multipart([json.dumps(request).encode(), *frames])
        assert sock.poll(120_000), f"no reply to {request['cmd']}"
        return json.loads(sock.recv())
    finally:
        sock.close(0)


def test_support_changes_pause_resume_and_marks_are_audited_with_who(tmp_path):
    for folder, name in (("server", "server"), ("clients", "plc-line4")):
        assert main(["keys", str(tmp_path / folder), "--name", name]) == 0
    (tmp_path / "authorized").mkdir()
    (tmp_path / "authorized" / "plc-line4.key").write_bytes((tmp_path / "clients" / "plc-line4.key").read_bytes())
    archive = tmp_path / "archive"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"stream": {
        "archive": {"enabled": True, "path": str(archive)},
        "console": {"tokens": {"alice": TOKEN}},
        "security": {"server_key": str(tmp_path / "server" / "server.key_secret"),
                     "authorized_keys": str(tmp_path / "authorized")}}}))
    ports = {"pub": free_port(), "ctl": free_port(), "http": free_port()}
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source",
             "sim:?objects=30&fps=10", "--publish", f"tcp://127.0.0.1:{ports['pub']}", "--control",
             f"tcp://127.0.0.1:{ports['ctl']}", "--metrics-port", str(ports["http"]), "--cache-dir",
             str(tmp_path / "cache")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out,
            stderr=subprocess.STDOUT)
    ctx = zmq.Context()
    key = client_socket_options(tmp_path / "clients" / "plc-line4.key_secret", tmp_path / "server" / "server.key")
    bus = ctx.socket(zmq.SUB)
    apply_options(bus, key)
    bus.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/audit")
    bus.connect(f"tcp://127.0.0.1:{ports['pub']}")
    base = f"http://127.0.0.1:{ports['http']}"
    try:
        assert wait_until(lambda: _ready(base), 90, 0.2), log.read_text()[-2000:]
        image, mask = ConveyorSimulator(640, 480, 30, 8).support()
        # The console, with the named token: a support change (the support mirrored, so that its id is new).
        body, headers = multipart({"image": _png(image[:, ::-1].copy()),
                                   "mask": _png(mask[:, ::-1].astype(np.uint8) * 255)})
        status, _, reply = http(f"{base}/api/support/upload", body,
                                headers={**headers, "Authorization": f"Bearer {TOKEN}"}, method="POST")
        assert status == 200, reply
        console_support = json.loads(reply)["support_id"]
        # A wrong token is refused, and changes nothing.
        status, _, _ = http(f"{base}/api/pause", {}, headers={**HEADER, "Authorization": "Bearer wrong-token-000000"},
                            method="POST")
        assert status == 401
        # Over CURVE, with the key named plc-line4: a support change, pause, resume and a mark.
        ctl = f"tcp://127.0.0.1:{ports['ctl']}"
        reply = _ask(ctx, ctl, key, {"cmd": "set_support"}, _png(image), _png(mask.astype(np.uint8) * 255))
        assert reply["ok"], reply
        curve_support = reply["support_id"]
        for cmd in ({"cmd": "pause"}, {"cmd": "resume"}, {"cmd": "mark", "note": "disputed count"}):
            assert _ask(ctx, ctl, key, cmd)["ok"]
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < 5 and time.monotonic() < deadline:
            if bus.poll(500):
                seen.append(json.loads(bus.recv_multipart()[1]))
    finally:
        bus.close(0)
        ctx.destroy(0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    on_bus = [(e["action"], e["who"], e.get("new_support")) for e in seen]
    assert ("support", "alice", console_support) in on_bus, on_bus
    assert ("support", "plc-line4", curve_support) in on_bus, on_bus
    assert {("pause", "plc-line4"), ("resume", "plc-line4"), ("mark", "plc-line4")} <= {a[:2] for a in on_bus}
    in_index = ArchiveReader(archive).audit()
    changes = {(e["who"], e["old_support"], e["new_support"]) for e in in_index if e["action"] == "support"}
    assert ("plc-line4", console_support, curve_support) in changes, in_index
    assert any(who == "alice" and new == console_support and old != new for who, old, new in changes), in_index
    assert any(e["action"] == "mark" and e["detail"] == {"note": "disputed count"} for e in in_index)
    # The mark kept the next frame, and the seconds around it.
    assert ArchiveReader(archive).frames(kinds=("marked",))
    # Names, never credentials: the token is nowhere in the log.
    assert TOKEN not in log.read_text()


def _ready(base: str) -> bool:
    try:
        status, _ = get_json(f"{base}/readyz", timeout=2)
    except OSError:
        return False
    return status == 200
