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
    # Every number has bounds, every endpoint a port in range (issue 11).
    ("stream: {publish: {send_hwm: 1000000000000}}", "stream.publish.send_hwm"),
    ("stream: {publish: {queue_size: 1000000000}}", "stream.publish.queue_size"),
    ("stream: {publish: {endpoint: 'tcp://127.0.0.1:99999'}}", "port must be a number from 1 to 65535"),
    ("stream: {publish: {endpoint: 'tcp://127.0.0.1:http'}}", "port must be a number"),
    ("stream: {publish: {endpoint: 'udp://127.0.0.1:5556'}}", "must be tcp://HOST:PORT"),
    ("stream: {control: {endpoint: 'tcp://127.0.0.1'}}", "must be tcp://HOST:PORT"),
    ("stream: {control: {max_request_bytes: 1000000000000}}", "stream.control.max_request_bytes"),
    ("stream: {control: {timeout_s: 1e9}}", "stream.control.timeout_s"),
    ("stream: {control: {max_image_pixels: 0}}", "stream.control.max_image_pixels"),
    ("stream: {metrics: {port: 70000}}", "stream.metrics.port"),
    ("stream: {supervisor: {stall_timeout: 1e9}}", "stream.supervisor.stall_timeout"),
    ("stream: {max_frames: 1000000000000000}", "stream.max_frames"),
    ("stream: {security: {server_key: a.key_secret}}", "both server_key and authorized_keys"),
    ("pipeline: {max_prompts: 1000000000}", "pipeline.max_prompts"),
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

def _publish_until(stop, endpoint_box: dict, messages: list[list[bytes]], rounds: int | None = None) -> None:
    """A stand-in processor: sends `messages` in turn until `stop`, or for `rounds` rounds once a subscriber has
    subscribed. XPUB, so that the subscription arrives as a message: a handshake, not a guess at join time."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    endpoint_box["endpoint"] = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    endpoint_box["ready"].set()
    sent = 0
    try:
        while not stop.is_set() and (rounds is None or sent < rounds):
            while sock.poll(0):
                if sock.recv()[:1] == b"\x01":  # a subscription
                    endpoint_box["subscribed"].set()
            for message in messages:
                sock.send_multipart(message)
            sent += endpoint_box["subscribed"].is_set()
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
    stop, box = threading.Event(), {"ready": threading.Event(), "subscribed": threading.Event()}
    thread = threading.Thread(target=_publish_until, args=(stop, box, [bad, good]), daemon=True)
    thread.start()
    try:
        assert box["ready"].wait(5)
        code = main(["subscribe", "--endpoint", box["endpoint"], "--max-messages", "1", "--timeout", "10",
                     "--save-overlays", str(tmp_path / "overlays")])
    finally:
        stop.set()
        thread.join(5)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0
    assert "skipping a malformed message: result header lacks the 'seq' field" in captured.err
    assert "skipping" not in out, "notes go to stderr, stdout holds only results"
    assert "cam0 seq=0 frame=12 count=0" in out
    assert (tmp_path / "overlays" / "cam0_00000000.jpg").stat().st_size > 0


def test_subscribe_overlay_folder_that_cannot_be_made_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["subscribe", "--endpoint", "tcp://127.0.0.1:1", "--save-overlays", str(blocker / "sub"),
                 "--timeout", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("persense subscribe: error: cannot create --save-overlays folder")


def _status(camera: str = "cam0") -> list[bytes]:
    from streamer.stream.messages import status_message

    return status_message(camera, {"event": "heartbeat", "state": "streaming", "paused": True})


def _subscribe_beside(
    messages: list[list[bytes]], *argv: str, publish_s: float = 60.0, rounds: int | None = None
) -> tuple[int | None, bool]:
    """`persense subscribe --endpoint <stand-in> *argv` in a thread while a stand-in publishes `messages` (for
    `rounds` rounds after the subscription arrives, or until the subscriber ends, at most `publish_s`, a generous
    bound) -> (exit code or None, whether it ended while the stand-in was still publishing)."""
    import threading

    stop, box = threading.Event(), {"ready": threading.Event(), "subscribed": threading.Event()}
    publisher = threading.Thread(target=_publish_until, args=(stop, box, messages, rounds), daemon=True)
    publisher.start()
    assert box["ready"].wait(5)
    result: dict = {}
    subscriber = threading.Thread(
        target=lambda: result.setdefault("code", main(["subscribe", "--endpoint", box["endpoint"], *argv])), daemon=True
    )
    subscriber.start()
    if rounds is not None:
        assert box["subscribed"].wait(30), "the subscriber never subscribed"
        publisher.join(publish_s)
    subscriber.join(publish_s)
    ended_while_publishing = not subscriber.is_alive() and publisher.is_alive()
    stop.set()
    publisher.join(5)
    subscriber.join(30)  # with its own --timeout it ends soon after the stand-in stops
    return result.get("code"), ended_while_publishing


def test_subscribe_timeout_is_not_reset_by_status_heartbeats(capsys):
    # A paused processor still sends heartbeats: without a result, --timeout must still end the subscriber.
    code, ended = _subscribe_beside([_status()], "--timeout", "0.3", "--max-messages", "1", publish_s=15)
    captured = capsys.readouterr()
    assert ended, "the subscriber ran on while only heartbeats came"
    assert code == 1
    assert "no result for 0.3 s" in captured.err and "only 0 of 1 result(s)" in captured.err
    assert captured.out == "", "status lines only with --status; notes go to stderr"


def test_subscribe_prints_status_only_with_status_flag_and_still_times_out(capsys):
    code, ended = _subscribe_beside([_status("belt")], "--timeout", "0.3", "--status", publish_s=15)
    captured = capsys.readouterr()
    assert ended, "heartbeats kept the subscriber running"
    assert code == 0, "no --max-messages: a timeout is the normal end"
    assert "belt status heartbeat: state=streaming paused=True" in captured.out


def test_subscribe_timeout_before_max_messages_exits_1(capsys):
    import numpy as np

    from streamer.sources.base import Frame
    from streamer.stream.messages import PartOptions, result_message
    from streamer.types import SegmentationResult

    one = result_message(Frame(np.zeros((4, 4, 3), np.uint8), 3, 1000.0, "cam0"), SegmentationResult(4, 4, []), 0, "s",
                         PartOptions())
    # The stand-in repeats the same seq; the subscriber counts each copy, so ask for more than can come in time.
    code, _ = _subscribe_beside([one], "--timeout", "0.3", "--max-messages", "1000000", rounds=5)
    captured = capsys.readouterr()
    assert code == 1
    assert "cam0 seq=0 frame=3 count=0" in captured.out
    assert "no result for 0.3 s; stopping" in captured.err and "no result" not in captured.out


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_subscribe_timeout_must_be_positive(capsys, value):
    assert main(["subscribe", "--endpoint", "tcp://127.0.0.1:1", "--timeout", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--timeout must be more than 0 seconds" in err[0]


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_run_and_subscribe_help_use_the_common_metavars(capsys):
    run_help = _help("run", capsys)
    for usage in ("--config YAML", "--source URI", "--support IMAGE", "--support-mask MASK", "--max-frames N",
                  "--publish ENDPOINT", "--cache-dir DIR"):
        assert usage in run_help, usage
    sub_help = _help("subscribe", capsys)
    for usage in ("--max-messages N", "--endpoint ENDPOINT", "--timeout SECONDS", "(default tcp://127.0.0.1:5556)",
                  "default: wait for ever"):
        assert usage in sub_help, usage


def test_support_flags_merge_field_by_field_over_the_config(tmp_path):
    path = tmp_path / "sup.yaml"
    path.write_text(f"support: {{image: {tmp_path / 'conf.png'}, mask: {tmp_path / 'conf_mask.png'}}}\n")
    image_only = apply_flags(load_config(path), _args("--support", "img.png")).support
    assert (str(image_only.image), image_only.mask) == ("img.png", tmp_path / "conf_mask.png")
    mask_only = apply_flags(load_config(path), _args("--support-mask", "m.png")).support
    assert (mask_only.image, str(mask_only.mask)) == (tmp_path / "conf.png", "m.png")
    neither = apply_flags(load_config(path), _args()).support
    assert (neither.image, neither.mask) == (tmp_path / "conf.png", tmp_path / "conf_mask.png")


@pytest.mark.parametrize("uri, why", [
    ("sim:?objects=-5", "objects must be between 0 and 10000"),
    ("sim:?bogus=1", "unknown option 'bogus'"),
    ("sim:?fps=-1", "fps must be 0"),
])
def test_run_reports_a_bad_source_before_loading_engines(tmp_path, capsys, monkeypatch, uri, why):
    import cv2
    import numpy as np

    import streamer.engine_factory

    def no_engines(config):
        raise AssertionError("engines were built before the sources were checked")

    monkeypatch.setattr(streamer.engine_factory, "build_engines", no_engines)
    # A real support set, so the simulator's own support (which opens the source URI) is not what catches it.
    cv2.imwrite(str(tmp_path / "s.png"), np.full((32, 32, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "m.png"), np.pad(np.full((8, 8), 255, np.uint8), 12))
    code = main(["run", "--source", uri, "--support", str(tmp_path / "s.png"), "--support-mask", str(tmp_path / "m.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("persense run: error: camera cam0: ") and why in err[0]
