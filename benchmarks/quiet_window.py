"""Run a benchmark once the machine is quiet: both (all) cores idle for a while, read from /proc/stat.

    python benchmarks/quiet_window.py -- persense bench --workers 1,2 --frames 24 --rounds 3
    python benchmarks/quiet_window.py --idle-s 2 --max-wait-s 1200 -- python benchmarks/sam_batch.py

On a machine shared with other sessions, ratios of two configurations mean something only when nothing else runs
(this kernel's sched_autogroup gives a busy session about one core whatever it runs: docs/performance.md, 13).
Waits (at most --max-wait-s) until the cores were at least --idle-share idle over --idle-s seconds, prints the load
average and the moment, runs the command, and prints the load average again once it has ended, with the cores that
other processes took meanwhile (all cores' busy time less the command's own, from /proc/stat and the command's CPU
times): a run during which others took more than a small part of a core says little. With --repeat N, does that N
times (each run waits for its own quiet window; quiet windows here last seconds, so keep each run short). Exit: the
last command's, or 3 when no quiet window came in time (the command is then not run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime


def busy_seconds() -> float:
    """All cores' busy seconds so far (everything but idle and iowait), from /proc/stat."""
    idle, total = cpu_times()
    return (total - idle) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of all cores together, from /proc/stat's first line."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return idle, sum(fields)


def wait_quiet(idle_s: float, idle_share: float, max_wait_s: float, step_s: float = 0.25) -> float | None:
    """Seconds waited until the cores were `idle_share` idle over the last `idle_s` s; None after `max_wait_s`."""
    start = time.monotonic()
    window: list[tuple[float, int, int]] = []
    while time.monotonic() - start < max_wait_s:
        now = time.monotonic()
        window.append((now, *cpu_times()))
        while len(window) > 1 and now - window[1][0] >= idle_s:
            window.pop(0)
        first = window[0]
        if now - first[0] >= idle_s:
            total = window[-1][2] - first[2]
            if total > 0 and (window[-1][1] - first[1]) / total >= idle_share:
                return now - start
        time.sleep(step_s)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-s", type=float, default=2.0, help="how long the cores must be idle (default 2 s)")
    parser.add_argument("--idle-share", type=float, default=0.97,
                        help="the least idle share of all cores over that time (default 0.97)")
    parser.add_argument("--max-wait-s", type=float, default=1200.0, help="give up after this long (default 20 min)")
    parser.add_argument("--repeat", type=int, default=1, help="run the command this many times (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if not (0 < args.idle_s <= 60 and 0 < args.idle_share <= 1 and 0 < args.max_wait_s <= 24 * 3600
            and 1 <= args.repeat <= 100):
        parser.error("--idle-s must be in (0, 60], --idle-share in (0, 1], --max-wait-s in (0, 86400], "
                     "--repeat in 1..100")
    deadline = time.monotonic() + args.max_wait_s
    code = 3
    for run in range(args.repeat):
        waited = wait_quiet(args.idle_s, args.idle_share, deadline - time.monotonic())
        if waited is None:
            print(f"no quiet window within {args.max_wait_s:.0f} s; run {run + 1} not run", file=sys.stderr)
            return 3
        print(f"run {run + 1}: quiet after {waited:.0f} s at {datetime.now():%H:%M:%S}; load average before "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        code, others = run_measured(command)
        print(f"run {run + 1}: load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())} at "
              f"{datetime.now():%H:%M:%S}; other processes took {others:.2f} cores meanwhile", flush=True)
    return code


def run_measured(command: list[str]) -> tuple[int, float]:
    """Run `command`; -> (its exit code, the cores other processes took on average while it ran)."""
    before = os.times()
    busy, start = busy_seconds(), time.monotonic()
    code = subprocess.call(command)
    wall = time.monotonic() - start
    after = os.times()
    own = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return code, max(busy_seconds() - busy - own, 0.0) / wall if wall > 0 else 0.0


if __name__ == "__main__":
    sys.exit(main())
