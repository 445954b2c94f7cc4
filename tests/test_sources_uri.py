"""open_source URI parsing, option checking, credential redaction and the V4L2 source's failure path."""

from __future__ import annotations

import logging
import time

import pytest

from streamer.errors import UserError
from streamer.sources import CameraSupervisor, SourceError, SourceState, open_source, redact, source_kind
from streamer.sources.capture import RtspSource, V4l2Source, ffmpeg_options, v4l2_target


@pytest.mark.parametrize(
    "uri, kind",
    [
        ("rtsp://10.0.0.5:554/stream1", "rtsp"),
        ("RTSP://user:pw@cam/x", "rtsp"),
        ("rtsps://cam/x", "rtsp"),
        ("v4l2:0", "v4l2"),
        ("/dev/video3", "v4l2"),
        ("/dev/v4l/by-id/usb-cam-video-index0", "v4l2"),
        ("gige:", "gige"),
        ("gige:Basler-12345", "gige"),
        ("sim:", "sim"),
        ("sim", "sim"),
        ("sim:?objects=60&fps=30", "sim"),
    ],
)
def test_source_kinds(uri, kind):
    assert source_kind(uri) == kind


def test_paths_are_files_or_folders(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x")
    assert source_kind(str(video)) == "file"
    assert source_kind(f"file://{video}") == "file"
    assert source_kind(str(tmp_path)) == "folder"


@pytest.mark.parametrize(
    "uri, message",
    [
        ("http://cam/stream.mjpg", "unknown source scheme 'http:'"),
        ("foo:bar", "unknown source scheme 'foo:'"),
        ("/no/such/video.mp4", "source not found: /no/such/video.mp4"),
        ("missing_dir/", "source not found"),
        ("  ", "empty source"),
    ],
)
def test_bad_uris_are_one_line_user_errors(uri, message):
    with pytest.raises(UserError) as info:
        open_source(uri, "cam0")
    text = str(info.value)
    assert message in text and "\n" not in text


def test_unknown_scheme_with_credentials_is_redacted():
    with pytest.raises(UserError) as info:
        open_source("http://admin:hunter2@cam/stream", "cam0")
    assert "hunter2" not in str(info.value) and "admin" not in str(info.value)
    assert "http://***@cam/stream" in str(info.value)


def test_options_are_checked_per_kind():
    with pytest.raises(UserError, match=r"unknown option 'bogus' for a rtsp source \(known: analyzeduration"):
        open_source("rtsp://u:pw@cam/x", "cam0", bogus=1)
    with pytest.raises(UserError, match="transport must be tcp or udp"):
        open_source("rtsp://cam/x", "cam0", transport="sctp")
    with pytest.raises(UserError, match=r"sim source option fps='fast' is not a valid float"):
        open_source("sim:?fps=fast", "cam0")
    with pytest.raises(UserError, match="unknown option 'colour'"):
        open_source("sim:?colour=red", "cam0")
    with pytest.raises(UserError, match="sim options go after '\\?'"):
        open_source("sim:objects=5", "cam0")
    with pytest.raises(UserError, match="width must be between"):
        open_source("sim:?width=5", "cam0")
    with pytest.raises(UserError, match=r"fps must be 0 \(as fast as possible\) or more, got -1"):
        open_source("sim:?fps=-1", "cam0")
    with pytest.raises(UserError, match="fps must be 0"):
        open_source("sim:", "cam0", fps="nan")
    with pytest.raises(UserError, match="not a valid bool"):
        open_source(__file__, "cam0", realtime="maybe")


def test_rtsp_options_reach_the_source():
    source = open_source("rtsp://cam/x", "cam0", rtsp_transport="tcp", open_timeout="2.5", read_timeout=1)
    assert isinstance(source, RtspSource)
    assert (source.transport, source.open_timeout, source.read_timeout) == ("tcp", 2.5, 1.0)
    assert source.live is True


def test_sim_query_and_keyword_options_merge():
    source = open_source("sim:?width=96&height=64&objects=5&fps=0", "s", objects=7, seed="2")
    source.open()
    frame = source.read(1.0)
    assert frame.image.shape == (64, 96, 3)
    assert source.simulator.frame(0).count == frame.truth_count


def test_loop_on_a_live_source_is_ignored_with_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    open_source("rtsp://u:secret@cam/x", "cam0", loop=True)
    assert "loop applies to files" in caplog.text and "secret" not in caplog.text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:pw@10.0.0.5:554/s", "rtsp://***@10.0.0.5:554/s"),
        ("rtsp://admin@cam/s", "rtsp://***@cam/s"),
        ("rtsp://a:p@ss@cam/s", "rtsp://***@cam/s"),
        ("rtsp://cam/s?user=admin&password=x&channel=1", "rtsp://cam/s?user=***&password=***&channel=1"),
        ("opening rtsp://u:p@h/x failed; retry rtsp://v:q@k/y", "opening rtsp://***@h/x failed; retry rtsp://***@k/y"),
        ("rtsp://cam:554/plain", "rtsp://cam:554/plain"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_ffmpeg_options_keep_the_inherited_ones():
    assert ffmpeg_options("tcp", 0.5) == "rtsp_transport;tcp|analyzeduration;500000"
    assert ffmpeg_options(None, None, "stimeout;100") == "stimeout;100"
    assert ffmpeg_options("udp", None, "fflags;nobuffer") == "fflags;nobuffer|rtsp_transport;udp"


@pytest.mark.parametrize(
    "spec, target",
    [("v4l2:2", 2), ("/dev/video11", 11), (3, 3), ("/dev/v4l/by-id/cam", "/dev/v4l/by-id/cam")],
)
def test_v4l2_targets(spec, target):
    assert v4l2_target(spec) == target


def test_missing_v4l2_device_is_retried_not_fatal():
    source = open_source("v4l2:97", "usb0")
    assert isinstance(source, V4l2Source)
    with pytest.raises(SourceError, match="/dev/video97 does not exist"):
        source.open()
    states = []
    sup = CameraSupervisor("usb0", lambda: open_source("/dev/video97", "usb0"), lambda f: None,
                           lambda c, s, r: states.append(s), backoff_initial=0.01, backoff_max=0.02)
    sup.start()
    try:
        deadline = time.monotonic() + 10
        while sup.reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sup.reconnects >= 2 and sup.is_alive()
        assert SourceState.RECONNECTING in states and SourceState.ENDED not in states
    finally:
        sup.stop()
    assert not sup.is_alive() and sup.state == SourceState.STOPPED
