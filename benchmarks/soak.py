"""Memory soak: run `persense run` on the simulator and sample its resident memory.

    python benchmarks/soak.py --minutes 10 --warmup-s 60 --json soak.json

Passes when resident memory after warm-up grows by no more than --max-growth percent (default 5). The
curve (seconds, MiB) is printed and written with --json. Ports are picked free, bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="memory before this is not compared")
    parser.add_argument("--interval-s", type=float, default=5.0)
    parser.add_argument("--max-growth", type=float, default=5.0, help="percent")
    parser.add_argument("--source", default="sim:?objects=60&fps=15")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    cmd = [
        sys.executable, "-m", "streamer", "-q", "run", "--source", args.source,
        "--publish", f"tcp://127.0.0.1:{free_port()}", "--control", f"tcp://127.0.0.1:{free_port()}",
        "--metrics-port", str(free_port()),
    ]
    proc = subprocess.Popen(cmd)
    curve = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < args.minutes * 60:
            time.sleep(args.interval_s)
            if proc.poll() is not None:
                print(f"persense run exited early with {proc.returncode}", file=sys.stderr)
                return 1
            curve.append((round(time.monotonic() - start, 1), round(rss_mib(proc.pid), 1)))
            print(f"{curve[-1][0]:8.1f} s  {curve[-1][1]:8.1f} MiB", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    after = [mib for t, mib in curve if t >= args.warmup_s]
    if len(after) < 2:
        print("too short to compare: raise --minutes or lower --warmup-s", file=sys.stderr)
        return 1
    growth = 100.0 * (max(after[len(after) // 2 :]) - after[0]) / after[0]
    verdict = growth <= args.max_growth
    summary = {
        "source": args.source, "minutes": args.minutes, "warmup_s": args.warmup_s,
        "rss_after_warmup_mib": after[0], "rss_end_mib": after[-1], "rss_max_mib": max(after),
        "growth_pct": round(growth, 2), "max_growth_pct": args.max_growth, "ok": verdict,
        "exit_code_on_sigterm": code, "curve": curve,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if verdict and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
