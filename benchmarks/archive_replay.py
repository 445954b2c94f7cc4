"""Replay: a recorded simulator run replayed with its own support gives the recorded counts and masks frame by frame;
replayed with the support of the simulator's other kind of object, how near that kind's truth it counts.

    python benchmarks/archive_replay.py --minutes 2 --source "sim:?shape=washer&fps=30" --json replay.json

Records `persense run --source SOURCE` for --minutes with the archive on (every frame, PNG: a replay sees exactly
what the line saw), then runs `persense replay` twice: with the recorded support (identical counts and masks
expected), and with a support picked on the other kind (a typical whole object of it, in the first kept frame)
compared with that kind's truth. Prints the figures (the replays' totals) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.soak import free_port  # noqa: E402


def _persense(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _totals(done: subprocess.CompletedProcess) -> dict:
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("total: ")][-1][7:])


def record(source: str, seconds: float, workdir: Path) -> Path:
    archive = workdir / "archive"
    config = workdir / "config.yaml"
    config.write_text(json.dumps({"stream": {"archive": {
        "enabled": True, "path": str(archive), "image_format": "png", "max_bytes": 8 * 10**9, "max_age_s": None,
        "queue_size": 256, "policy": {"every_n": 1}}}}))
    proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", source,
                             "-q", "--status-interval", "0", "--publish", f"tcp://127.0.0.1:{free_port()}",
                             "--control", f"tcp://127.0.0.1:{free_port()}", "--metrics-port", "0",
                             "--cache-dir", str(workdir / "cache")], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    return archive


def _solidity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.concatenate(contours)))
    return float(cv2.contourArea(max(contours, key=cv2.contourArea)) / max(hull, 1.0))


def other_kind_support(source: str, archive: Path, workdir: Path) -> tuple[Path, Path]:
    """A typical whole object of the simulator's other kind in the first kept frame -> (image, mask) files."""
    from streamer.archive.reader import ArchiveReader
    from streamer.sources import open_source

    reader = ArchiveReader(archive)
    first = reader.frames(limit=1)[0]
    image = reader.image(first)
    scene = open_source(source, "cam0").simulator.frame(first.frame_index)
    assert np.array_equal(scene.image, image), "the archive's frame is not the simulator's"
    labels, n = ndimage.label(scene.distractors)
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    inside = [k for k in range(1, n + 1) if k not in edge] or list(range(1, n + 1))
    # Whole ones: convex (solidity >= 0.95), not a part left by an object in front nor two touching; as a user
    # would pick (a partly hidden one as the support made whole rectangles fail its shape: -25% against -5%).
    whole = [k for k in inside if _solidity(labels == k) >= 0.95] or inside
    areas = ndimage.sum(scene.distractors, labels, whole)
    typical = whole[int(np.argsort(areas)[len(areas) // 2])]
    paths = workdir / "other.png", workdir / "other_mask.png"
    cv2.imwrite(str(paths[0]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(paths[1]), (labels == typical).astype(np.uint8) * 255)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--source", default="sim:?fps=30")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archive-replay-") as tmp:
        workdir = Path(tmp)
        archive = record(args.source, args.minutes * 60, workdir)
        own = _totals(_persense("replay", str(archive), "--totals-only"))
        image, mask = other_kind_support(args.source, archive, workdir)
        other = _totals(_persense("replay", str(archive), "--totals-only", "--support", str(image),
                                  "--support-mask", str(mask), "--truth", "distractor"))
    figures = {"source": args.source, "minutes": args.minutes, "own_support": own, "other_kind_support": other}
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    identical = own["counts_differ"] == 0 and own["masks_differ"] == 0 and own["compared"] == own["frames"] > 0
    print(f"own support: {'identical' if identical else 'DIFFERENT'} over {own['frames']} frames; other kind: "
          f"{other.get('truth_error', float('nan')):+.2%} of its truth")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
