"""`persense run` as a real process on a video file, with real peers in other processes.

The subscriber script below is written from docs/stream-protocol.md alone (pyzmq, pycocotools, json);
it runs in its own process. The metrics and probes are read over HTTP, the control socket over ZeroMQ.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
import zmq

ROOT = Path(__file__).resolve().parents[1]
FRAMES, SIZE = 10, (320, 240)

SUBSCRIBER = r'''
import json, sys, zmq
from pycocotools import mask as mask_utils
endpoint, last_seq, deadline_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = zmq.Context().socket(zmq.SUB)
sock.connect(endpoint)
sock.setsockopt(zmq.SUBSCRIBE, b"persense/")
seqs, problems, statuses = [], [], 0
while sock.poll(int(deadline_s * 1000)):
    topic, header, *parts = sock.recv_multipart()
    msg = json.loads(header)
    if msg["schema"] == "persense.status/1":
        statuses += 1
        continue
    if topic != ("persense/%s/result" % msg["camera"]).encode() or msg["schema"] != "persense.result/1":
        problems.append("topic/schema %r %r" % (topic, msg["schema"]))
    if msg["count"] != len(msg["instances"]):
        problems.append("count %d != %d instances" % (msg["count"], len(msg["instances"])))
    if len(parts) != len(msg["parts"]):
        problems.append("parts %r but %d frames" % (msg["parts"], len(parts)))
    for inst in msg["instances"]:
        m = mask_utils.decode({"size": inst["mask"]["size"], "counts": inst["mask"]["counts"].encode()})
        x0, y0, x1, y1 = inst["bbox"]
        if m.shape != (msg["height"], msg["width"]) or int(m.sum()) != inst["area"] or m[y0:y1, x0:x1].sum() != m.sum():
            problems.append("mask of instance %d: shape %s area %d" % (inst["id"], m.shape, m.sum()))
    seqs.append(msg["seq"])
    if msg["seq"] >= last_seq:
        break
print(json.dumps({"seqs": seqs, "problems": problems[:5], "statuses": statuses, "size": [msg["width"], msg["height"]] if seqs else None}))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    """A short MJPG video of simulator frames and the simulator's support image and mask as files."""
    from streamer.simulator import ConveyorSimulator

    folder = tmp_path_factory.mktemp("media")
    sim = ConveyorSimulator(SIZE[0], SIZE[1], n_objects=12, n_distractors=2)
    video = folder / "belt.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for i in range(FRAMES):
        writer.write(cv2.cvtColor(sim.frame(i).image, cv2.COLOR_RGB2BGR))
    writer.release()
    image, mask = sim.support()
    cv2.imwrite(str(folder / "support.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "mask.png"), mask.astype("uint8") * 255)
    return {"video": video, "support": folder / "support.png", "mask": folder / "mask.png", "dir": folder}


def _run_args(media: dict, ports: dict, *extra: str) -> list[str]:
    return [sys.executable, "-m", "streamer", "run", "--source", str(media["video"]),
            "--support", str(media["support"]), "--support-mask", str(media["mask"]),
            "--publish", f"tcp://127.0.0.1:{ports['pub']}", "--control", f"tcp://127.0.0.1:{ports['ctl']}",
            "--metrics-port", str(ports["http"]), "--cache-dir", str(media["dir"] / "cache"), *extra]


def _ports() -> dict:
    return {"pub": _free_port(), "ctl": _free_port(), "http": _free_port()}


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_run_on_a_video_file_publishes_what_a_doc_written_subscriber_decodes(media, tmp_path):
    ports, max_frames = _ports(), 8
    script = tmp_path / "sub.py"
    script.write_text(SUBSCRIBER)
    # The subscriber connects first; ZeroMQ retries until the processor binds.
    sub = subprocess.Popen([sys.executable, str(script), f"tcp://127.0.0.1:{ports['pub']}", str(max_frames - 1), "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    run = subprocess.run(_run_args(media, ports, "--every-frame", "--max-frames", str(max_frames), "--label-map"),
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    out, err = sub.communicate(timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sub.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["problems"] == []
    seqs = report["seqs"]
    assert len(seqs) >= max_frames // 2, (seqs, run.stderr[-2000:])  # the first may precede the subscription
    assert seqs == list(range(seqs[0], max_frames)) and report["size"] == list(SIZE)
    assert "published 8 result(s)" in run.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _control(port: int, frames: list[bytes]) -> dict:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        sock.send_multipart(frames)
        assert sock.poll(60000), "no reply from the control socket"
        return json.loads(sock.recv())
    finally:
        sock.close()


def _wait(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, f"persense run exited early: {proc.communicate()[1][-3000:]}"
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_running_processor_answers_http_control_subscribe_and_sigterm(media, tmp_path):
    ports = _ports()
    base = f"http://127.0.0.1:{ports['http']}"
    proc = subprocess.Popen(_run_args(media, ports, "--loop", "--camera-id", "line-7", "--overlay"), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _get(base + "/readyz")[0] == 200, 120, proc)
        assert _get(base + "/healthz")[0] == 200
        sub = subprocess.run([sys.executable, "-m", "streamer", "subscribe", "--endpoint",
                              f"tcp://127.0.0.1:{ports['pub']}", "--max-messages", "3", "--timeout", "30",
                              "--save-overlays", str(tmp_path / "overlays")],
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=90)
        assert sub.returncode == 0, sub.stderr
        lines = [line for line in sub.stdout.splitlines() if line.startswith("line-7 seq=")]
        assert len(lines) == 3 and "line-7: 3 result(s), 0 missed" in sub.stdout
        saved = sorted((tmp_path / "overlays").glob("line-7_*.jpg"))
        assert len(saved) == 3 and cv2.imread(str(saved[0])).shape == (SIZE[1], SIZE[0], 3)

        status, metrics = _get(base + "/metrics")
        assert status == 200
        assert 'persense_source_up{camera="line-7"} 1.0' in metrics
        processed = [ln for ln in metrics.splitlines() if ln.startswith('persense_frames_total{camera="line-7",outcome="processed"}')]
        assert processed and float(processed[0].split()[-1]) >= 3
        assert 'persense_stage_seconds_count{camera="line-7",stage="decode"}' in metrics

        ctl = ports["ctl"]
        status = _control(ctl, [b'{"cmd": "status"}'])
        assert status["ok"] and status["cameras"]["line-7"]["state"] == "streaming"
        assert _control(ctl, [b'{"cmd": "pause"}'])["paused"] is True
        assert _control(ctl, [b'{"cmd": "status"}'])["paused"] is True
        assert _control(ctl, [b'{"cmd": "resume"}'])["paused"] is False
        for bad in ([b"\xff\xfe"], [b'{"cmd": 3}'], [b'{"cmd": "reboot"}'], [b'{"cmd": "set_support"}']):
            reply = _control(ctl, bad)
            assert reply["ok"] is False and reply["error"], reply
        image = cv2.imread(str(media["support"]))
        flipped = cv2.imencode(".png", image[:, ::-1])[1].tobytes()
        mask = cv2.imencode(".png", cv2.imread(str(media["mask"]))[:, ::-1])[1].tobytes()
        reply = _control(ctl, [b'{"cmd": "set_support"}', flipped, mask])
        assert reply["ok"] and reply["support_id"] != status["support_id"], reply
        assert _control(ctl, [b'{"cmd": "status"}'])["support_id"] == reply["support_id"]
        assert _get(base + "/healthz")[0] == 200  # bad requests did not hurt the pipeline

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "stopping (signal)" in err


def test_bad_source_is_one_line_and_exit_2(media):
    ports = _ports()
    args = _run_args(media, ports)
    args[args.index("--source") + 1] = str(media["dir"] / "missing.mp4")
    run = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "source not found" in run.stderr and "Traceback" not in run.stderr
