"""Input from outside is bounded before it is parsed: endpoints and URIs, and images (decompression bombs are
refused from their header, in milliseconds and without decoding). Out-of-range settings: test_stream_cli."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

import streamer.engine_factory
from streamer.cli import main
from streamer.errors import UserError
from streamer.imageio import decode_image_bytes, read_image
from streamer.stream.endpoints import check_endpoint
from streamer.stream.support import support_from_bytes
from tests.peers.control_fuzz import png_bomb, png_header_only


# -- configuration ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:*", "tcp://127.0.0.1:0", "tcp://127.0.0.1:65535",
                                      "tcp://[::1]:5556", "tcp://eth0:5556", "ipc:///tmp/x", "inproc://x"])
def test_good_endpoints_pass(endpoint):
    assert check_endpoint(endpoint) == endpoint


@pytest.mark.parametrize("flags, why", [
    (["--publish", "tcp://127.0.0.1:99999"], "port must be a number from 1 to 65535"),
    (["--control", "tcp://127.0.0.1:-1"], "port must be a number"),
    (["--source", "rtsp://camera:notaport/stream"], "the port must be a number from 1 to 65535"),
    (["--source", "rtsp://camera:70000/stream"], "the port must be a number from 1 to 65535"),
])
def test_bad_endpoints_and_uris_exit_2_before_the_engines_load(flags, why, capsys, monkeypatch):
    monkeypatch.setattr(streamer.engine_factory, "build_engines",
                        lambda config: pytest.fail("engines were built before the flags were checked"))
    assert main(["run", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0]


# -- images -------------------------------------------------------------------------------------------------

def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("data, words", [
    (png_header_only(30_000, 30_000), "more than"),  # beyond Pillow's own bomb bound
    (png_header_only(8_000, 7_000), "8000x7000"),
    (_jpeg_claiming(60_000, 60_000), "more than"),
    (_jpeg_claiming(10_000, 6_000), "10000x6000"),
])
def test_bombs_are_refused_from_the_header(data, words):
    with pytest.raises(UserError, match=f"support image of {words}.* exceeds the limit of 50000000 pixels"):
        support_from_bytes(data, data)


def test_a_real_png_bomb_is_refused_but_decodes_under_a_higher_limit():
    bomb = png_bomb(8_000, 7_000)  # 56 megapixels of zeros in well under a megabyte
    assert len(bomb) < 200_000
    with pytest.raises(UserError, match="exceeds the limit"):
        decode_image_bytes(bomb, "image")
    assert decode_image_bytes(bomb, "image", max_pixels=60_000_000).shape == (7_000, 8_000)


def test_the_limit_applies_to_files_and_folders_alike(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10_000, 10_000))
    with pytest.raises(UserError, match="query image of 10000x10000 pixels exceeds"):
        read_image(path, "query image")
    with pytest.raises(UserError, match="not a readable image"):
        decode_image_bytes(b"\x89PNG\r\n\x1a\n truncated", "support image")


def test_set_support_bomb_gets_an_error_reply(tmp_path):
    from test_stream_doubles import LiveSource, blob_frame
    from test_stream_loop import _config, _processor, _request

    config = _config(tmp_path, [{"uri": "x", "camera_id": "cam0"}])
    config.stream.control.max_request_bytes = 4 * 1024 * 1024
    proc = _processor(config, {"cam0": lambda: LiveSource("cam0", [blob_frame(5, seed=4)])})
    proc.start()
    try:
        bomb = png_bomb(30_000, 30_000)
        reply = _request(proc.control.endpoint, [b'{"cmd": "set_support"}', bomb, bomb])
        assert reply["ok"] is False and "exceeds the limit" in reply["error"]
        assert _request(proc.control.endpoint, [b'{"cmd": "status"}'])["ok"]
    finally:
        proc.stop()
