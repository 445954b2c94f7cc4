"""The states of /api/status (issue 25) without a browser, and the truth after a pick in the console."""

from __future__ import annotations

import pytest

from console_helpers import distractor_point, get_json, post
from streamer.console.states import STALE_S, view_state
from streamer.simulator import ConveyorSimulator
from test_console_http import _processor
from waiting import wait_until

LIVE = {"count": 12, "match_quality": 0.8, "result_age_s": 0.1}


@pytest.mark.parametrize("status, figures, expected", [
    ({"state": "streaming"}, LIVE, ("streaming", "", True)),
    ({"state": "streaming", "paused": True}, LIVE, ("paused", "PAUSED", False)),
    ({"state": "reconnecting"}, LIVE, ("reconnecting", "NO SIGNAL", False)),
    ({"state": "stalled"}, LIVE, ("reconnecting", "NO SIGNAL", False)),
    ({"state": "ended"}, LIVE, ("no_signal", "NO SIGNAL", False)),
    ({"state": "streaming"}, {**LIVE, "count": 0, "match_quality": -0.134}, ("not_present", "NOT PRESENT", True)),
    ({"state": "streaming"}, {**LIVE, "count": 0, "match_quality": 0.9}, ("streaming", "", True)),  # an empty belt
    ({"state": "streaming"}, {**LIVE, "result_age_s": STALE_S + 1}, ("streaming", "", False)),  # stuck results
    ({"state": "streaming"}, {"count": None, "match_quality": None, "result_age_s": None}, ("streaming", "", False)),
])
def test_view_state(status, figures, expected):
    view = view_state(status, figures, 0.4)
    assert (view["view_state"], view["image_label"], view["current"]) == expected


def test_status_api_says_paused_and_the_truth_follows_a_pick(tmp_path):
    proc = _processor(tmp_path)
    proc.start()
    try:
        base = proc.http.base_url
        assert wait_until(lambda: get_json(base + "/api/status")[1]["cameras"]["belt"]["frame_index"] is not None, 30)
        belt = get_json(base + "/api/status")[1]["cameras"]["belt"]
        assert belt["view_state"] == "streaming" and belt["presence_level"] == 0.4 and belt["warnings"] == []
        assert belt["truth_count"] is not None
        post(base + "/api/pause")
        belt = get_json(base + "/api/status")[1]["cameras"]["belt"]
        assert (belt["view_state"], belt["image_label"], belt["current"]) == ("paused", "PAUSED", False)
        post(base + "/api/resume")

        # A pick on a distractor: the results now carry the distractors' truth, not the product's.
        _, frozen = post(base + "/api/cameras/belt/freeze")
        simulator = ConveyorSimulator(640, 480, 20, 6)
        x, y = distractor_point(simulator, frozen["frame_index"])
        _, pick = post(base + "/api/pick", {"freeze_id": frozen["freeze_id"], "x": x, "y": y})
        status, applied = post(base + "/api/support/apply",
                               {"freeze_id": frozen["freeze_id"], "pick_id": pick["pick_id"]})
        assert status == 200, applied

        def picked_truth():
            shown = proc.live.latest("belt")
            return shown is not None and shown.support_id == applied["support_id"] and shown.frame

        assert wait_until(picked_truth, 20)
        frame = picked_truth()
        assert frame.truth_count == simulator.frame(frame.index).distractor_count != simulator.frame(frame.index).count
    finally:
        proc.stop()


def test_status_api_gives_items_passed_and_the_last_out_of_spec_items(tmp_path):
    from streamer.config import Config, EnginesConfig
    from streamer.engine_factory import build_engines
    from streamer.stream.config import StreamConfig
    from streamer.stream.processor import StreamProcessor
    from streamer.stream.support import initial_support

    stream = StreamConfig.model_validate({
        "sources": [{"uri": "sim:?flow=1&objects=8&distractors=0&width=192&height=144&fps=8&speed=8",
                     "camera_id": "line"}],
        "publish": {"endpoint": "tcp://127.0.0.1:*"}, "control": {"endpoint": None}, "metrics": {"port": 0},
        "cache_dir": str(tmp_path),
        # Every item is out of spec: no item is under a pixel across.
        "tally": {"lines": [{"points": [0.5, 0, 0.5, 1], "normalized": True}], "specs": {"diameter": {"max": 1}}},
    })
    proc = StreamProcessor(Config(stream=stream), build_engines(EnginesConfig()),
                           initial_support(None, None, stream.sources))
    proc.start()
    try:
        base = proc.http.base_url

        def line():
            return get_json(base + "/api/status")[1]["cameras"]["line"]

        assert wait_until(lambda: line().get("out_of_spec_recent"), 90, 0.2), line()
        status = line()
        assert status["passed_total"] >= 1 and status["out_of_spec_total"] >= len(status["out_of_spec_recent"]) >= 1
        item = status["out_of_spec_recent"][-1]
        assert item["in_spec"] is False and item["measure"]["diameter"] > 1 and item["units"] == "px"
    finally:
        proc.stop()
