"""Replay: a recorded simulator run replayed with its own support gives the recorded counts and masks frame by frame;
replayed with the support of the simulator's other kind of object, how near that kind's truth it counts.

    python benchmarks/archive_replay.py --minutes 2 --source "sim:?shape=washer&fps=30" --json replay.json

Records `persense run --source SOURCE` for --minutes with the archive on (every frame, PNG: a replay sees exactly
what the line saw), then runs `persense replay` twice: with the recorded support (identical counts and masks
expected), and with a support picked on the other kind (a typical whole object of it, in the first kept frame)
compared with that kind's truth. Prints the figures (the replays' totals, and where the other kind's count falls
short: truth objects with no counted mask, inside or at the frame's edge by pixels in view) as JSON.
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


def misses(source: str, results: Path) -> dict:
    """Where the other kind's count falls short: each counted mask (a `persense replay --out` line per frame) goes
    to the truth object under most of it; the truth objects left without one are missed, told apart by whether
    they touch the frame's edge and how many pixels of them are in view."""
    from streamer.rle import decode
    from streamer.sources import open_source

    simulator = open_source(source, "cam0").simulator
    missed_at_edge, missed_inside, unmatched, truth = [], 0, 0, 0
    with open(results) as lines:
        for line in lines:
            doc = json.loads(line)
            labels = simulator.frame(doc["frame_index"]).distractor_labels
            n = int(labels.max())
            truth += n
            matched = set()
            for item in doc["instances"]:
                under = labels[decode(item["mask"]).astype(bool)]
                votes = np.bincount(under, minlength=n + 1)
                best = int(np.argmax(votes[1:])) + 1 if n else 0
                if n == 0 or 2 * votes[best] < under.size or best in matched:
                    unmatched += 1
                else:
                    matched.add(best)
            rim = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).tolist()))
            shown = np.bincount(labels.ravel(), minlength=n + 1)
            for k in set(range(1, n + 1)) - matched:
                if k in rim:
                    missed_at_edge.append(int(shown[k]))
                else:
                    missed_inside += 1
    bins = [0, 50, 100, 200, 400, 800, 10**9]
    shown_px = np.histogram(missed_at_edge, bins)[0].tolist()
    return {"truth": truth, "missed_inside": missed_inside, "missed_at_edge": len(missed_at_edge),
            "missed_at_edge_by_px_in_view": {f"{lo}-{hi if hi < 10**9 else 'more'}": c
                                             for lo, hi, c in zip(bins, bins[1:], shown_px)},
            "masks_not_on_one_of_their_own": unmatched}


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
                                  "--support-mask", str(mask), "--truth", "distractor", "--out",
                                  str(workdir / "other.jsonl")))
        short = misses(args.source, workdir / "other.jsonl")
    figures = {"source": args.source, "minutes": args.minutes, "own_support": own, "other_kind_support": other,
               "other_kind_misses": short}
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    identical = own["counts_differ"] == 0 and own["masks_differ"] == 0 and own["compared"] == own["frames"] > 0
    print(f"own support: {'identical' if identical else 'DIFFERENT'} over {own['frames']} frames; other kind: "
          f"{other.get('truth_error', float('nan')):+.2%} of its truth")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
