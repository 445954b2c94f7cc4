"""Archive bounds: with a size limit and a policy that keeps every frame, the archive never takes more than the
limit on disk, and the line's frame rate stays that of a run without the archive.

    python benchmarks/archive_bounds.py --minutes 10 --max-mb 50 --json archive_bounds.json

Two `persense run` processes on the simulator at full rate start together and run side by side for the same time,
one with the archive (every frame kept, --max-mb limit), one without; side by side, whatever else loads the machine
loads both alike. Every second the archive directory is measured (the blocks its files take, as `du` counts them,
and their lengths). Passes when the largest sample is within the limit and the frame rate with the archive is at
least --min-ratio (default 0.95) of the one without. Ports are free ones of 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.soak import free_port  # noqa: E402

_PROCESSED = re.compile(r'^persense_frames_total\{camera="cam0",outcome="processed"\} ([0-9.e+]+)$', re.M)


def disk_usage(path: Path) -> tuple[int, int]:
    """-> (bytes the files under `path` take on disk, their total length)."""
    blocks = length = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:  # removed between the listing and the look
                continue
            blocks += st.st_blocks * 512
            length += st.st_size
    return blocks, length


class Line:
    """`persense run` on the simulator in its own process; with `archive`, its archive config."""

    def __init__(self, workdir: Path, name: str, source: str, archive: dict | None):
        self.http = free_port()
        config = workdir / f"{name}.yaml"
        stream = {"archive": archive} if archive else {}
        config.write_text(json.dumps({"stream": stream}))
        args = [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", source, "-q",
                "--publish", f"tcp://127.0.0.1:{free_port()}", "--control", f"tcp://127.0.0.1:{free_port()}",
                "--metrics-port", str(self.http), "--cache-dir", str(workdir / "cache"), "--status-interval", "0"]
        self.log = open(workdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def processed(self) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5) as resp:
                found = _PROCESSED.search(resp.read().decode())
        except OSError:
            return None
        return float(found.group(1)) if found else None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


def measure(seconds: float, max_mb: float, source: str, workdir: Path, image_format: str = "jpeg") -> dict:
    """Run both lines for `seconds` after both process frames -> the figures (see the module doc)."""
    archive_dir = workdir / "archive"
    limit = int(max_mb * 10**6)  # MB as the disk makers count them: the stricter reading of "50 MB"
    archive = {"enabled": True, "path": str(archive_dir), "max_bytes": limit, "image_format": image_format,
               "policy": {"every_n": 1}}
    lines = {"archive": Line(workdir, "with", source, archive), "none": Line(workdir, "without", source, None)}
    try:
        deadline = time.monotonic() + 120
        while not all((line.processed() or 0) > 0 for line in lines.values()):
            if time.monotonic() > deadline or any(line.proc.poll() is not None for line in lines.values()):
                raise RuntimeError("a line did not start: see the logs in " + str(workdir))
            time.sleep(0.5)
        start = {name: line.processed() for name, line in lines.items()}
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < seconds:
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0) % 1.0))
            samples.append(disk_usage(archive_dir))
        elapsed = time.monotonic() - t0
        end = {name: line.processed() for name, line in lines.items()}
    finally:
        codes = {name: line.stop() for name, line in lines.items()}
    samples.append(disk_usage(archive_dir))  # after the stop too: the index's last checkpoint
    fps = {name: (end[name] - start[name]) / elapsed for name in lines}
    return {
        "seconds": round(elapsed, 1), "limit_bytes": limit, "samples": len(samples),
        "max_disk_bytes": max(s[0] for s in samples), "max_length_bytes": max(s[1] for s in samples),
        "final_disk_bytes": samples[-1][0],
        "fps_with_archive": round(fps["archive"], 3), "fps_without": round(fps["none"], 3),
        "fps_ratio": round(fps["archive"] / fps["none"], 4) if fps["none"] else None,
        "frames_with_archive": end["archive"] - start["archive"], "exit_codes": codes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-mb", type=float, default=50.0, help="the archive's limit (MB, 10^6 bytes)")
    parser.add_argument("--min-ratio", type=float, default=0.95, help="frame rate with / without the archive")
    parser.add_argument("--source", default="sim:?objects=60&fps=30")
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--json", type=Path, help="write the figures there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archive-bounds-") as tmp:
        figures = measure(args.minutes * 60, args.max_mb, args.source, Path(tmp), args.format)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    ok = figures["max_disk_bytes"] <= figures["limit_bytes"] and (figures["fps_ratio"] or 0) >= args.min_ratio
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
