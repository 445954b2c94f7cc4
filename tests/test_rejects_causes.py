"""benchmarks/rejects_causes.py: each missed item and wrong reject gets its cause (the flow simulator's truth)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from benchmarks.rejects import HEIGHT, WIDTH, _simulator
from benchmarks.rejects_causes import causes


def test_each_missed_item_and_wrong_reject_is_given_its_cause():
    args = SimpleNamespace(fps=30.0, speed=8.0, objects=40, px_per_mm=2.0, out_of_spec=0.3, downstream_mm=100.0,
                           seed=3)
    sim = _simulator(args)
    indices = np.arange(0, 400)
    station = WIDTH + args.downstream_mm * args.px_per_mm
    ids, _, defects = sim.arrivals((station, 0.0, station, float(HEIGHT)), indices[0] + station / args.speed, 399)
    large = [int(i) for i, kind in zip(ids, defects) if kind > 0]
    small = [int(i) for i, kind in zip(ids, defects) if kind < 0]
    in_spec = [int(i) for i, kind in zip(ids, defects) if kind == 0]
    nominal = sim.nominal_diameter_px / args.px_per_mm  # 31 mm: the spec is 0.75-1.25 of it
    missed = {large[0]: [],  # never segmented
              large[1]: [(5, 1, None), (6, 1, None)],  # never whole
              large[2]: [(5, 2, nominal), (6, 2, nominal * 1.05), (7, 2, 2.0 * nominal)],  # median in spec
              small[0]: [(5, 3, nominal)],  # in spec: too large a mask for a small item
              large[3]: [(5, 4, 1.6 * nominal)]}  # out of spec, yet no reject
    rejects = [{"truth_id": ident, "track_id": 10 + k, "reasons": [], "arrival_wall": 0.0, "missed": False}
               for k, ident in enumerate(large[4:] + small[1:])]
    rejects += [{"truth_id": large[4], "track_id": 90, "reasons": [], "arrival_wall": 0.0, "missed": False},
                {"truth_id": in_spec[0], "track_id": 91, "reasons": [], "arrival_wall": 0.0, "missed": False},
                {"truth_id": None, "track_id": 92, "reasons": [], "missed": False,
                 "arrival_wall": 1.8e9 + 200 / args.fps},  # a piece on no item, due in the window
                {"truth_id": None, "track_id": 93, "reasons": [], "missed": False,
                 "arrival_wall": 1.8e9 + 900 / args.fps}]  # due after the window: not counted
    counts, lines = causes(args, rejects, indices, missed)
    assert dict(counts) == {"never segmented": 1, "never whole": 1, "measured in spec (mask too small)": 1,
                            "measured in spec (mask too large)": 1, "measured out of spec, not rejected": 1,
                            "wrong: a second reject of one item": 1, "wrong: an in-spec item": 1,
                            "wrong: a piece, on no item": 1}
    assert len(lines) == 8 and f"missed item {large[0]} (large): 0 masks" in lines[0]
