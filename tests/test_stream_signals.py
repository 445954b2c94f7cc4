"""SIGTERM at any moment after the interpreter started `persense run` (while it imports, loads models, binds,
or runs) exits 0 after a clean stop, never by the signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def _catches_sigterm(pid: int) -> bool:
    """True once the process installed a SIGTERM handler (Linux: the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to see the handler")
@pytest.mark.parametrize("delay_s", [0.0, 0.0, 0.15, 0.4])
def test_sigterm_early_in_run_exits_0(tmp_path, delay_s):
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--publish", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*",
         "--metrics-port", "0", "--cache-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: _catches_sigterm(proc.pid) or proc.poll() is not None, 30, interval=0.001)
        time.sleep(delay_s)  # a spread of moments: imports, set-up, running; the outcome must not depend on it
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"exit status {proc.returncode}: {err[-2000:]}"
    assert "Traceback" not in err


def test_the_handler_is_in_place_before_the_slow_imports(monkeypatch):
    """main installs its SIGTERM handling before it builds the parser (which imports every subcommand)."""
    import streamer.cli as cli

    seen = []

    def build_parser_spy():
        seen.append(signal.getsignal(signal.SIGTERM))
        raise cli.Terminated(signal.SIGTERM)  # as if SIGTERM came during those imports

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "build_parser", build_parser_spy)
    assert cli.main(["run"]) == 0
    assert seen and seen[0] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    assert cli.main(["segment"]) == 128 + signal.SIGTERM  # other commands: terminated, not a clean stop


@pytest.mark.timeout(180)
def test_sighup_while_running_stops_cleanly_and_publishes_the_last_results(tmp_path):
    """A closed terminal or ssh session (SIGHUP) is a clean stop like SIGTERM: exit 0, results flushed."""
    import json

    import zmq

    from benchmarks.soak import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--publish", f"tcp://127.0.0.1:{port}", "--control",
         "tcp://127.0.0.1:*", "--metrics-port", "0", "--cache-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/result")
    sub.connect(f"tcp://127.0.0.1:{port}")
    seqs: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(seqs) < 3 and time.monotonic() < deadline and proc.poll() is None:
            if sub.poll(200):
                seqs.append(json.loads(sub.recv_multipart()[1])["seq"])
        assert len(seqs) >= 3, "no results before the signal"
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
        while sub.poll(500):  # what was flushed at the stop
            seqs.append(json.loads(sub.recv_multipart()[1])["seq"])
    finally:
        sub.close()
        context.term()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"exit status {proc.returncode}: {err[-2000:]}"
    assert "Traceback" not in err and "stopping (signal)" in err
    published = int(err.split("published ")[-1].split(" result")[0])
    # seq counts from 0 per camera: the last result published reached the subscriber.
    assert seqs[-1] == published - 1, (seqs[-5:], published)
