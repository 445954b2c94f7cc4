"""Run `persense run` as a real process and collect what it publishes, from outside, over ZeroMQ."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]


def run_and_collect(cmd: list[str], endpoint: str, prefix: bytes, timeout_s: float = 240.0):
    """Start `cmd`, subscribe to `prefix` at `endpoint` until the process ends and its messages are read (or
    `timeout_s`) -> (return code, stderr, [(topic, header dict), ...])."""
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, prefix)
    sub.setsockopt(zmq.RCVHWM, 10000)
    sub.connect(endpoint)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    messages = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (proc.poll() is None or sub.poll(0)):
            if sub.poll(200):
                topic, header, *_ = sub.recv_multipart()
                messages.append((topic, json.loads(header)))
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate(timeout=30)[1]
        sub.close(0)
        context.term()
    return proc.returncode, stderr, messages
