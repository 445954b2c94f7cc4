"""`persense run --count-line` on the flow simulator as a real process; this test subscribes from outside."""

from __future__ import annotations

import json
import sys

from tests.stream_capture import run_and_collect
from tests.test_stream_e2e import _free_port


def test_run_with_a_count_line_publishes_track_ids_and_tallies(tmp_path):
    pub = _free_port()
    config = tmp_path / "tally.yaml"
    config.write_text(json.dumps({"stream": {"tally": {"interval_s": 0.5, "calibration": {"px_per_mm": 2}}}}))
    source = "sim:?flow=1&objects=8&distractors=0&width=192&height=144&fps=8&speed=8&px_per_mm=2"
    cmd = [sys.executable, "-m", "streamer", "run", "--config", str(config), "--source", source,
           "--count-line", "0.5,0,0.5,1", "--publish", f"tcp://127.0.0.1:{pub}",
           "--control", f"tcp://127.0.0.1:{_free_port()}",
           "--metrics-port", "0", "--max-frames", "60", "--cache-dir", str(tmp_path)]
    code, stderr, messages = run_and_collect(cmd, f"tcp://127.0.0.1:{pub}", b"persense/cam0/")
    results = [header for topic, header in messages if topic.endswith(b"/result")]
    tallies = [header for topic, header in messages if topic.endswith(b"/tally")]
    assert code == 0, stderr[-2000:]
    assert len(results) > 20
    last = results[-1]
    assert all("track_id" in inst and "measure" in inst for inst in last["instances"])
    assert last["passed_total"] > 0 and last["truth_passed_total"] > 0
    # Small frames and few objects: the count follows the truth closely (the benchmark holds the 1-3% figures).
    assert abs(last["passed_total"] - last["truth_passed_total"]) <= max(2, 0.2 * last["truth_passed_total"])
    assert tallies and all(t["schema"] == "persense.tally/1" and t["units"] == "mm" for t in tallies)
    assert [t["seq"] for t in tallies] == list(range(len(tallies)))
    assert tallies[-1]["passed_total"] <= last["passed_total"]
