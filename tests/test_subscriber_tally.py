"""The subscriber library and `persense subscribe` decode the tally topic (persense/<camera>/tally)."""

from __future__ import annotations

import json

import pytest

from streamer.stream.messages import tally_message
from streamer.stream.tally import CameraTally
from streamer.subscriber import PassedItem, ProtocolError, ResultMessage, TallyMessage, decode_message
from tests.test_stream_cli import _subscribe_beside
from tests.test_stream_tally import _config, _frames

MIDDLE = [[0.4, 0.0], [0.6, 0.0], [0.6, 1.0], [0.4, 1.0]]


@pytest.fixture(scope="module")
def tally_doc() -> dict:
    """The tally message fields of a flow-simulator run with a line and a zone."""
    tally = None
    for frame, result, sim in _frames(2):
        if tally is None:
            tally = CameraTally(_config(zones=[{"points": MIDDLE, "name": "middle"}]), "cam0", sim.support()[1])
        tally.observe(frame, result)
    return tally.take_interval()


def test_a_tally_message_decodes_to_typed_fields(tally_doc):
    msg = decode_message(tally_message("cam0", 4, tally_doc))
    assert isinstance(msg, TallyMessage) and not isinstance(msg, ResultMessage)
    assert (msg.camera, msg.seq, msg.units) == ("cam0", 4, "mm")
    assert msg.passed_total == tally_doc["passed_total"] > 10 and msg.passed == tally_doc["passed"]
    assert msg.truth_passed_total == tally_doc["truth_passed_total"]
    assert msg.measured_total == len(msg.items) and msg.out_of_spec_total == tally_doc["out_of_spec_total"]
    assert msg.by_direction == {"forward": msg.passed_total, "backward": 0}
    item = msg.items[0]
    assert isinstance(item, PassedItem) and item.direction == "forward" and item.line == "line0"
    assert item.measure["diameter"] == tally_doc["items"][0]["measure"]["diameter"] > 0
    assert item.truth_diameter == tally_doc["items"][0]["truth_diameter"]
    zone = msg.zones["middle"]
    assert zone.entries_total == tally_doc["zones"]["middle"]["entries_total"] > 10
    assert zone.dwell == {d["track_id"]: d["seconds"] for d in tally_doc["zones"]["middle"]["dwell"]}
    assert msg.header["size_histogram"] == tally_doc["size_histogram"]


@pytest.mark.parametrize("change, why", [
    ({"schema": "persense.tally/9"}, "tally schema"),
    ({"passed_total": None}, "lacks the 'passed_total' field"),
    ({"passed_total": "12"}, "'passed_total' is str, expected int"),
    ({"items": [{"track_id": 1}]}, "malformed items or zones"),
    ({"items": [7]}, "an item is not an object"),
    ({"items": [{"track_id": 1, "in_spec": "yes", "measure": None}]}, "an item is not an object"),
    ({"items": [{"in_spec": True, "measure": None}]}, "malformed items or zones"),
    ({"zones": {"a": {"in_zone": 1}}}, "malformed items or zones"),
])
def test_malformed_tally_messages_are_refused(tally_doc, change, why):
    doc = dict(tally_doc)
    for key, value in change.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    topic, header = tally_message("cam0", 0, doc)
    if "schema" in change:
        header = json.dumps({**json.loads(header), "schema": change["schema"]}).encode()
    with pytest.raises(ProtocolError, match=why):
        decode_message([topic, header])


def test_persense_subscribe_prints_tally_lines_and_leaves_them_out_on_request(capsys, tally_doc):
    message = tally_message("cam0", 2, tally_doc)
    code, ended = _subscribe_beside([message], "--timeout", "0.5", "--camera", "cam0", rounds=3, publish_s=30)
    out = capsys.readouterr().out
    zone = tally_doc["zones"]["middle"]
    assert code == 0 and "skipping" not in out
    assert (f"cam0 tally seq=2 passed={tally_doc['passed']} passed_total={tally_doc['passed_total']} "
            f"truth_passed={tally_doc['truth_passed_total']} measured={tally_doc['measured_total']} "
            f"out_of_spec={tally_doc['out_of_spec_total']} zone[middle]: in={zone['in_zone']} "
            f"entries={zone['entries_total']}") in out
    code, _ = _subscribe_beside([message], "--timeout", "0.5", "--no-tally", rounds=3, publish_s=30)
    captured = capsys.readouterr()
    assert code == 0 and "tally" not in captured.out and "skipping" not in captured.err
