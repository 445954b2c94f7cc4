"""Why a `benchmarks/rejects.py --stream` run missed or wrongly made rejects: its processed frames again, offline.

    python benchmarks/rejects.py --stream --seconds 120 --fps 30 --speed 4 --save run.json
    python benchmarks/rejects_causes.py run.json --fps 30 --speed 4

The frames the run processed (their indices, from `--save`) are segmented again in this process with the default
engines, and the reject chain replays them at the run's pace (each frame decided `--latency-ms` after its
capture): the same masks, so, at the default engines' pace, the same rejects (the run's own figures are printed
beside). Then, per out-of-spec item of the window that got no reject and per reject that named no out-of-spec
item (or one named already), the cause:
- never segmented: no mask's centroid in the item's disc in any processed frame it was in;
- never whole: segmented only where the frame's edge cut it, or where the decoder scored it under
  `min_view_score`;
- measured in spec (a mask too small or too large): the median of its measured size (its whole views' diameters)
  against the truth;
- measured out of spec, not rejected: its tracks' figures were out of spec, yet no reject of its tracks
  named it (taken for a piece of another track's item, or for a second track of another rejected item);
- wrong: a piece (its track's centroid in no item's disc), an in-spec item, or a second reject of one item.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.rejects import HEIGHT, WIDTH, _simulator, _tally_config, score  # noqa: E402
from benchmarks.stream_run import add_flow_arguments  # noqa: E402
from streamer.simulator.flow import SPEC_BAND  # noqa: E402


def replay_engines(args, indices: list[int]) -> tuple[list[dict], np.ndarray, dict]:
    """The run's processed frames segmented again and tallied -> (reject messages, float[M] capture times,
    truth item id -> [(frame index, track id, diameter in mm or None where not a whole view)])."""
    from streamer.cli.common import build_pipeline
    from streamer.config import load_config
    from streamer.sources.base import Frame
    from streamer.stream.tally import CameraTally
    from streamer.stream.tally_config import TallyConfig

    sim = _simulator(args)
    pipeline = build_pipeline(load_config(None))
    pipeline.set_support(*sim.support())
    config = TallyConfig.model_validate(_tally_config(args, sim))
    tally = CameraTally(config, "cam0", sim.support()[1])
    now = [0.0]
    tally.rejects.wall_clock = tally.rejects.mono_clock = lambda: now[0]
    rejects, times, views = [], [], defaultdict(list)
    for index in indices:
        scene, truth = sim.frame(index)
        capture = 1.8e9 + index / args.fps
        now[0] = capture + args.latency_ms / 1000.0
        result = pipeline.segment(scene.image)
        tally.observe(Frame(scene.image, index, capture, "cam0", scene.count, truth), result)
        rejects += [event.to_dict() for event in tally.reject_events]
        times.append(capture)
        for inst in result.instances:
            centre = np.array(inst.centroid)
            if not len(truth.ids):
                continue
            distance = np.hypot(*(truth.centres - centre).T)
            k = int(np.argmin(distance))
            if distance[k] <= truth.diameters_px[k] / 2:
                x0, y0, x1, y1 = inst.bbox
                whole = (x0 >= 1 and y0 >= 1 and x1 <= WIDTH - 1 and y1 <= HEIGHT - 1
                         and inst.score >= config.min_view_score)
                views[int(truth.ids[k])].append((index, inst.track_id, float(inst.measurements[1]) if whole else None))
    return rejects, np.array(times), views


def causes(args, rejects: list[dict], indices: np.ndarray, views: dict) -> tuple[Counter, list[str]]:
    """-> (cause -> count, a line per missed item or wrong reject)."""
    sim = _simulator(args)
    station_x = WIDTH + args.downstream_mm * args.px_per_mm
    line = (station_x, 0.0, station_x, float(HEIGHT))
    first, last = indices[0] + station_x / args.speed, indices[-1]
    ids, _, defects = sim.arrivals(line, first, last)
    out_of_spec = {int(i): int(kind) for i, kind in zip(ids, defects) if kind}
    nominal_mm = sim.nominal_diameter_px / args.px_per_mm
    low, high = SPEC_BAND[0] * nominal_mm, SPEC_BAND[1] * nominal_mm
    counts, lines = Counter(), []
    named = {doc.get("truth_id") for doc in rejects}
    for ident, kind in out_of_spec.items():
        if ident in named:
            continue
        seen = views.get(ident, [])
        whole = [size for _, _, size in seen if size is not None]
        tracks = sorted({track for _, track, _ in seen})
        measured = float(np.median(whole)) if whole else float("nan")
        if not seen:
            cause = "never segmented"
        elif not whole:
            cause = "never whole"
        elif low <= measured <= high:
            cause = f"measured in spec (mask too {'small' if kind > 0 else 'large'})"
        else:
            cause = "measured out of spec, not rejected"
        counts[cause] += 1
        size = "large" if kind > 0 else "small"
        lines.append(f"missed item {ident} ({size}): {len(seen)} masks, {len(whole)} whole, tracks {tracks}, "
                     f"measured {measured:.1f} mm -> {cause}")
    done = set()
    for doc in rejects:
        ident = doc.get("truth_id")
        arrival = sim.arrival_index(ident, line) if ident is not None else (doc["arrival_wall"] - 1.8e9) * args.fps
        if not first <= arrival <= last:
            continue
        if ident in out_of_spec and ident not in done:
            done.add(ident)
            continue
        cause = ("wrong: a second reject of one item" if ident in out_of_spec else
                 "wrong: a piece, on no item" if ident is None else "wrong: an in-spec item")
        counts[cause] += 1
        lines.append(f"reject of track {doc['track_id']} (item {ident}): {doc['reasons']} -> {cause}")
    return counts, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("saved", type=Path, help="a run saved with benchmarks/rejects.py --save")
    add_flow_arguments(parser)
    parser.add_argument("--out-of-spec", type=float, default=0.1)
    parser.add_argument("--downstream-mm", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=150.0, help="capture to decision in the replay")
    args = parser.parse_args()
    saved = json.loads(args.saved.read_text())
    run = score(args, saved["rejects"], np.array(saved["indices"]), np.array(saved["times"]))
    rejects, times, views = replay_engines(args, saved["indices"])
    indices = np.array(saved["indices"])
    again = score(args, rejects, indices, times)
    for name, out in (("the run", run), ("replayed", again)):
        print(f"{name}: precision {out['precision']:.3f}, recall {out['recall']:.3f} "
              f"({out['counted']} rejects in the window, {out['expected']} items out of spec)")
    counts, lines = causes(args, rejects, indices, views)
    print("\n".join(lines))
    print("| cause | count |\n|---|---|")
    print("\n".join(f"| {cause} | {count} |" for cause, count in counts.most_common()) or "| none | 0 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
