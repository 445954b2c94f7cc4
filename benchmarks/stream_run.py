"""`persense run` as a separate process for a benchmark, read from outside by a subscriber."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.soak import free_port  # noqa: E402


def add_flow_arguments(parser) -> None:
    """The flow simulator's options both stream benchmarks take (argparse)."""
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time after the first result")
    parser.add_argument("--fps", type=float, default=30.0, help="the simulator's frame rate")
    parser.add_argument("--speed", type=float, default=4.0, help="belt speed, pixels per source frame")
    parser.add_argument("--objects", type=int, default=40, help="items in view")
    parser.add_argument("--px-per-mm", type=float, default=2.0)


def run_and_read(config: dict, source: str, seconds: float, on_message: Callable[[bytes, dict], None],
                 extra_args: tuple[str, ...] = ()) -> None:
    """Run `persense run` with `config` (the YAML's content) on `source` and hand each message's topic and header
    to `on_message` for `seconds` after the first result (the engines load first: at most 300 s before it)."""
    pub, ctl, http = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(config))
        cmd = [sys.executable, "-m", "streamer", "run", "--config", str(path), "--source", source, *extra_args,
               "--publish", f"tcp://127.0.0.1:{pub}", "--control", f"tcp://127.0.0.1:{ctl}",
               "--metrics-port", str(http), "--cache-dir", tmp]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"persense/")
        sub.setsockopt(zmq.RCVHWM, 100_000)
        sub.connect(f"tcp://127.0.0.1:{pub}")
        try:
            deadline = None
            give_up = time.monotonic() + 300
            while time.monotonic() < (deadline or give_up):
                if proc.poll() is not None:
                    raise RuntimeError(f"persense run ended early: {proc.stderr.read()[-2000:]}")
                if not sub.poll(500):
                    continue
                topic, header, *_ = sub.recv_multipart()
                if deadline is None and topic.endswith(b"/result"):
                    deadline = time.monotonic() + seconds
                on_message(topic, json.loads(header))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            sub.close(0)
            context.term()
