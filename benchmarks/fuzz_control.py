"""Fuzz campaign: malformed control requests against a running `persense run`, outside the test suite.

    python benchmarks/fuzz_control.py --requests 10000 --seed 1 --json fuzz.json

Starts `persense run` (the simulator, embedded engines, every socket on 127.0.0.1 at free ports, the control
request limit lowered to --max-request-bytes so that the over-limit requests stay cheap to send), subscribes
to its results, and sends --requests seeded malformed requests (tests/peers/control_fuzz.py) one after
another. Every --check-every-s seconds (and at the end) it asks for `status`, counts the results published
since the last check and samples the processor's resident memory. Passes when every request got an error reply (or, for
the few that happen to be a valid `status`, a status reply), every `status` was answered, results were
published in every interval, the process never died, the control thread never needed a restart, and
resident memory grew by no more than --max-growth-mib over its figure before the first request.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.soak import free_port, rss_mib  # noqa: E402
from tests.peers.control_fuzz import malformed_request  # noqa: E402


class ResultCounter:
    """Counts the results the processor publishes, from a thread of its own."""

    def __init__(self, context: zmq.Context, endpoint: str):
        self.count = 0
        self._sock = context.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"persense/cam0/result")
        self._sock.connect(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(100):
                self._sock.recv_multipart()
                self.count += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def _request(sock: zmq.Socket, frames: list[bytes], timeout_ms: int) -> dict | None:
    sock.send_multipart(frames)
    if not sock.poll(timeout_ms):
        return None
    return json.loads(sock.recv())


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check-every-s", type=float, default=2.0)
    parser.add_argument("--max-request-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--max-growth-mib", type=float, default=64.0)
    parser.add_argument("--reply-timeout-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    pub, ctl, http = free_port(), free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="persense-fuzz-"))
    config = workdir / "fuzz.yaml"
    config.write_text(f"stream:\n  control: {{max_request_bytes: {args.max_request_bytes}}}\n")
    command = [sys.executable, "-m", "streamer", "-q", "run", "--config", str(config),
               "--source", "sim:?objects=30&fps=15", "--publish", f"tcp://127.0.0.1:{pub}",
               "--control", f"tcp://127.0.0.1:{ctl}", "--metrics-port", str(http),
               "--cache-dir", str(workdir / "cache")]
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    context = zmq.Context()
    control = context.socket(zmq.REQ)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(f"tcp://127.0.0.1:{ctl}")
    failures: list[str] = []
    rng = np.random.default_rng(args.seed)
    timeout_ms = int(args.reply_timeout_s * 1000)
    figures: dict = {"requests": args.requests, "seed": args.seed, "error_replies": 0, "status_replies": 0,
                     "no_reply": 0, "intervals": []}
    results = None
    started = time.monotonic()
    try:
        first = _request(control, [b'{"cmd": "status"}'], 120_000)  # models load and the support is set first
        if not first or not first.get("ok"):
            raise SystemExit(f"the processor did not come up: {first}")
        results = ResultCounter(context, f"tcp://127.0.0.1:{pub}")
        time.sleep(1.0)
        last_results, baseline_rss = results.count, rss_mib(proc.pid)
        figures["rss_before_mib"] = round(baseline_rss, 1)
        next_check = time.monotonic() + args.check_every_s
        for i in range(1, args.requests + 1):
            frames = malformed_request(rng, args.max_request_bytes)
            reply = _request(control, frames, timeout_ms)
            if reply is None:
                figures["no_reply"] += 1
                failures.append(f"request {i}: no reply to {[f[:40] for f in frames]}")
                control.close()  # a REQ socket without a reply cannot send again
                control = context.socket(zmq.REQ)
                control.setsockopt(zmq.LINGER, 0)
                control.connect(f"tcp://127.0.0.1:{ctl}")
            elif reply.get("ok"):
                figures["status_replies"] += 1
            else:
                figures["error_replies"] += 1
            if time.monotonic() >= next_check or i == args.requests:
                next_check = time.monotonic() + args.check_every_s
                deadline = time.monotonic() + 10.0  # a short last interval: give the pipeline time for one result
                while results.count == last_results and time.monotonic() < deadline:
                    time.sleep(0.05)
                status = _request(control, [b'{"cmd": "status"}'], timeout_ms)
                rss = rss_mib(proc.pid)
                published = results.count - last_results
                last_results = results.count
                figures["intervals"].append({"after": i, "status_ok": bool(status and status.get("ok")),
                                             "results_published": published, "rss_mib": round(rss, 1)})
                print(f"{i:6d} requests: status {'ok' if status and status.get('ok') else 'MISSING'}, "
                      f"{published} results in the interval, rss {rss:.1f} MiB", flush=True)
                if not (status and status.get("ok")):
                    failures.append(f"after {i}: status not answered")
                if published == 0:
                    failures.append(f"after {i}: no result published in the interval")
                if rss - baseline_rss > args.max_growth_mib:
                    failures.append(f"after {i}: resident memory grew {rss - baseline_rss:.1f} MiB")
            if proc.poll() is not None:
                failures.append(f"the processor exited ({proc.returncode}) at request {i}")
                break
        figures["control_restarts"] = _metric(http, "persense_control_restarts_total")
        figures["control_errors_counted"] = _metric(http, 'persense_control_requests_total{outcome="error"}')
        if figures["control_restarts"] != 0:
            failures.append(f"the control thread was restarted {figures['control_restarts']} time(s)")
    finally:
        figures["seconds"] = round(time.monotonic() - started, 1)
        if results is not None:
            results.close()
        control.close()
        context.term()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        figures["exit_status"] = proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        figures["tracebacks_in_log"] = stderr.count("Traceback")
        shutil.rmtree(workdir, ignore_errors=True)
    if figures["exit_status"] != 0:
        failures.append(f"exit status {figures['exit_status']} after SIGTERM")
    figures["failures"] = failures
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k != "intervals"}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
