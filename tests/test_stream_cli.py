"""`persense run` flags and the stream configuration: flags override the file, bad settings are one line."""

from __future__ import annotations

import pytest

from streamer.cli import build_parser, main
from streamer.cli.run import apply_flags
from streamer.config import load_config
from streamer.errors import UserError


def _args(*argv: str):
    return build_parser().parse_args(["run", *argv])


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "stream:\n"
        "  sources:\n"
        "    - {uri: 'sim:?objects=10', camera_id: left}\n"
        "    - {uri: 'sim:?objects=20'}\n"
        "  publish: {endpoint: 'tcp://127.0.0.1:7000', overlay_jpeg: true}\n"
        "  metrics: {host: 0.0.0.0, port: 9200}\n"
    )
    config = apply_flags(load_config(path), _args("--publish", "tcp://127.0.0.1:7100", "--loop", "--max-frames", "5"))
    stream = config.stream
    assert [s.camera_id for s in stream.sources] == ["left", "cam1"]
    assert all(s.loop for s in stream.sources) and not any(s.every_frame for s in stream.sources)
    assert stream.publish.endpoint == "tcp://127.0.0.1:7100" and stream.publish.overlay_jpeg
    assert (stream.metrics.host, stream.metrics.port, stream.max_frames) == ("0.0.0.0", 9200, 5)

    one = apply_flags(load_config(path), _args("--source", "video.mp4", "--camera-id", "belt", "--metrics-port", "0"))
    assert [(s.uri, s.camera_id) for s in one.stream.sources] == [("video.mp4", "belt")]
    assert one.stream.metrics.port == 0


def test_defaults_are_the_embedded_simulator_on_localhost():
    stream = apply_flags(load_config(None), _args()).stream
    assert [s.uri for s in stream.sources] == ["sim:?objects=60&fps=30"]
    assert stream.publish.endpoint == "tcp://127.0.0.1:5556" and stream.control.endpoint == "tcp://127.0.0.1:5557"
    assert (stream.metrics.host, stream.metrics.port) == ("127.0.0.1", 9108)


@pytest.mark.parametrize("yaml_text, why", [
    ("stream: {publsh: {}}", "publsh"),
    ("stream: {sources: [{uri: a, camera_id: x}, {uri: b, camera_id: x}]}", "unique"),
    ("stream: {sources: [{uri: a, camera_id: 'has space'}]}", "camera_id"),
    ("stream: {sources: []}", "at least one"),
    ("stream: {supervisor: {backoff_initial: 5, backoff_max: 1}}", r"backoff_max \(1.0\) must be at least backoff_initial"),
])
def test_bad_stream_settings_are_one_line(tmp_path, yaml_text, why):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UserError, match=why) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_bad_flags_exit_2_with_one_line(capsys, tmp_path):
    assert main(["run", "--max-frames", "0"]) == 2
    assert main(["run", "--camera-id", "no/slash"]) == 2
    assert main(["run", "--support", str(tmp_path / "missing.png"), "--support-mask", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("persense run: error: ") for line in err)
    assert "--max-frames" in err[0] and "camera_id" in err[1] and "not found" in err[2]


def test_the_documented_stream_config_is_valid():
    import re
    from pathlib import Path

    import yaml

    from streamer.config import Config

    doc = (Path(__file__).resolve().parents[1] / "docs" / "stream-protocol.md").read_text()
    block = re.findall(r"```yaml\n(.*?)```", doc, re.S)[0]
    stream = Config.model_validate(yaml.safe_load(block)).stream
    assert [s.camera_id for s in stream.sources] == ["line1", "replay"]
    assert stream.sources[0].options == {"transport": "tcp"} and stream.sources[1].loop


def test_equal_backoffs_are_valid_and_reach_the_supervisor():
    from streamer.sources.backoff import Backoff
    from streamer.stream.config import SupervisorConfig

    timing = SupervisorConfig(backoff_initial=2.0, backoff_max=2.0, jitter=0.0)
    assert Backoff(timing.backoff_initial, timing.backoff_max, timing.jitter).next() == 2.0


# -- persense subscribe ------------------------------------------------------------------------------------

def _publish_until(stop, endpoint_box: dict, messages: list[list[bytes]]) -> None:
    """A stand-in processor: a PUB socket sending `messages` in turn until `stop` (slow joiners catch up)."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    endpoint_box["endpoint"] = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    endpoint_box["ready"].set()
    try:
        while not stop.is_set():
            for message in messages:
                sock.send_multipart(message)
            stop.wait(0.05)
    finally:
        sock.close()
        ctx.term()


def test_subscribe_skips_a_header_without_seq_and_prints_the_good_one(capsys, tmp_path):
    import json
    import threading

    import numpy as np

    from streamer.sources.base import Frame
    from streamer.stream.messages import PartOptions, result_message
    from streamer.types import SegmentationResult

    good = result_message(Frame(np.zeros((4, 4, 3), np.uint8), 12, 1000.0, "cam0"), SegmentationResult(4, 4, []),
                          0, "s", PartOptions(overlay_jpeg=True))
    fields = json.loads(good[1])
    del fields["seq"], fields["capture_ts"]
    bad = [good[0], json.dumps(fields).encode(), *good[2:]]
    stop, box = threading.Event(), {"ready": threading.Event()}
    thread = threading.Thread(target=_publish_until, args=(stop, box, [bad, good]), daemon=True)
    thread.start()
    try:
        assert box["ready"].wait(5)
        code = main(["subscribe", "--endpoint", box["endpoint"], "--max-messages", "1", "--timeout", "10",
                     "--save-overlays", str(tmp_path / "overlays")])
    finally:
        stop.set()
        thread.join(5)
    out = capsys.readouterr().out
    assert code == 0
    assert "skipping a malformed message: result header lacks the 'seq' field" in out
    assert "cam0 seq=0 frame=12 count=0" in out
    assert (tmp_path / "overlays" / "cam0_00000000.jpg").stat().st_size > 0


def test_subscribe_overlay_folder_that_cannot_be_made_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["subscribe", "--endpoint", "tcp://127.0.0.1:1", "--save-overlays", str(blocker / "sub"),
                 "--timeout", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("persense subscribe: error: cannot create --save-overlays folder")
