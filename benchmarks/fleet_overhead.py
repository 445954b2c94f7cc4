"""What the fleet costs: aggregate frames/s of four cameras through `persense fleet` (Ray actors, the forwarder)
against the same four cameras as four separate `persense run` processes, on this machine.

Both sides run the embedded engines on the unpaced simulator (each camera as fast as its processor goes), so the
machine's cores are the limit and every cost of the fleet (Ray's own processes, the forwarder's hop) shows in the
figure. The separate processes run as Ray runs the fleet's workers: without the console (the fleet turns it off),
with OMP_NUM_THREADS=1 (what Ray sets for an actor of one CPU) and each in a session of its own, as Ray's workers
are: where the kernel groups processes by session for fair scheduling (sched_autogroup), four processes in one
session would share one group's CPU against the machine's other sessions, and the comparison would measure that. A subscriber in this process counts the results it receives (the fleet's one endpoint; the four processes'
four endpoints) over equal windows after a warm-up. Ray runs locally with a small object store and binds 127.0.0.1.

Run: .venv/bin/python benchmarks/fleet_overhead.py [--seconds 30] [--warmup 10] [--cpus 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fleet_testing import Recorder  # noqa: E402  (also keeps Ray on 127.0.0.1)

CAMERAS = {f"cam{i}": 1 + i % 2 for i in range(4)}  # camera -> simulator seed: two products
SIM = "sim:?objects=20&distractors=4&width=320&height=240&fps=0&seed={seed}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(endpoints: list[str], warmup: float, seconds: float, procs: list[subprocess.Popen]) -> float:
    """Aggregate results/s received over `seconds`, after every camera sent one and `warmup` passed."""
    recorders = [Recorder(endpoint).__enter__() for endpoint in endpoints]
    try:
        deadline = time.monotonic() + 300
        while not all(any(r.count(c) for r in recorders) for c in CAMERAS):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"cameras did not all publish: {[sorted(r.cameras()) for r in recorders]}")
            time.sleep(0.2)
        time.sleep(warmup)
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
        per_camera = {c: sum(sum(1 for _, _, at in r.of(c) if start <= at < end) for r in recorders) for c in CAMERAS}
    finally:
        for r in recorders:
            r.__exit__()
    print(f"  per camera: {per_camera}", file=sys.stderr)
    return sum(per_camera.values()) / (end - start)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


def separate_runs(warmup: float, seconds: float, cache: Path) -> float:
    procs, endpoints = [], []
    # As the fleet's workers run: no console, and one OpenMP thread per process, as Ray gives an actor of one CPU.
    config = cache / "run.yaml"
    config.write_text(json.dumps({"stream": {"console": {"enabled": False}}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        for camera, seed in CAMERAS.items():
            endpoint = f"tcp://127.0.0.1:{_free_port()}"
            endpoints.append(endpoint)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "streamer", "run", "-q", "--source", SIM.format(seed=seed), "--camera-id",
                 camera, "--publish", endpoint, "--control", f"tcp://127.0.0.1:{_free_port()}", "--metrics-port",
                 "0", "--cache-dir", str(cache), "--config", str(config)], cwd=ROOT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True))
        return _measure(endpoints, warmup, seconds, procs)
    finally:
        _stop(procs)


def fleet(warmup: float, seconds: float, cache: Path, cpus: int) -> float:
    publish = f"tcp://127.0.0.1:{_free_port()}"
    spec = {
        "fleet": {"publish": publish, "ingest": f"tcp://127.0.0.1:{_free_port()}",
                  "control": f"tcp://127.0.0.1:{_free_port()}", "local": {"num_cpus": cpus, "object_store_mb": 100}},
        "defaults": {"stream": {"cache_dir": str(cache)}},
        "cameras": [{"camera_id": camera, "uri": SIM.format(seed=seed)} for camera, seed in CAMERAS.items()],
    }
    path = cache / "fleet.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    proc = subprocess.Popen([sys.executable, "-m", "streamer", "fleet", "-q", str(path)], cwd=ROOT,
                            stdin=subprocess.DEVNULL)
    try:
        return _measure([publish], warmup, seconds, [proc])
    finally:
        _stop([proc])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--cpus", type=int, default=4, help="Ray's logical CPUs for the fleet (one per camera)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate the two this many times each, so a change in the machine's load hits both")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    runs, through_fleet = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}: four separate `persense run` processes ...", file=sys.stderr)
            runs.append(separate_runs(args.warmup, args.seconds, cache))
            print(f"round {round_ + 1}: `persense fleet`, four cameras on a local Ray ...", file=sys.stderr)
            through_fleet.append(fleet(args.warmup, args.seconds, cache, args.cpus))
    ratio = sum(through_fleet) / sum(runs) if sum(runs) else float("nan")
    print(json.dumps({"separate_runs_fps": [round(v, 2) for v in runs], "fleet_fps": [round(v, 2) for v in
                      through_fleet], "ratio": round(ratio, 3), "window_s": args.seconds, "cores": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
