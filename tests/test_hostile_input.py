"""Input from outside is bounded before it is parsed: endpoints and URIs, and images (decompression bombs are
refused from their header, in milliseconds and without decoding). Out-of-range settings: test_stream_cli."""

from __future__ import annotations

import re
import struct
import time

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
from tests.peers.deep_images import deep_png, deep_tiff, jpeg_claiming, webp_claiming


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
    (png_header_only(30_000, 30_000), "30000x30000"),  # beyond Pillow's own bomb bound: PNG headers are read here
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


# -- deep images: bounded by their decoded bytes (issue 24, item 2) ------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda: deep_png(7000, 7000, 16, 6), "7000x7000, 4 channel(s) of 16-bit integer"),  # 392 MB decoded
    (lambda: deep_png(7000, 7000, 16, 0), None),  # 16-bit grey: 98 MB, under the limit
    (lambda: deep_tiff(7000, 7000, 1, 32), "7000x7000, 1 channel(s) of 32-bit float"),  # 196 MB
    (lambda: deep_tiff(7000, 7000, 3, 32), "7000x7000, 3 channel(s) of 32-bit float"),
    (lambda: deep_tiff(5000, 5000, 4, 16, float_samples=False), "5000x5000, 4 channel(s) of 16-bit integer"),
    (lambda: deep_tiff(4000, 4000, 1, 64), None),  # float64 grey: 128 MB, under the limit
    (lambda: jpeg_claiming(7000, 7000), "7000x7000, 4 channel(s) of 8-bit"),  # CMYK
    (lambda: webp_claiming(7000, 7000), "7000x7000, 4 channel(s) of 8-bit"),  # RGBA
])
def test_deep_images_are_refused_by_their_decoded_size_from_the_header(make, words):
    data = make()
    start = time.perf_counter()
    if words is None:  # under the limit: the header passes; the truncated data then fails to decode
        with pytest.raises(UserError, match="not a readable image|decodes to"):
            decode_image_bytes(data, "support image")
        return
    with pytest.raises(UserError, match=rf"support image \({re.escape(words)}.*\) would decode to \d+ bytes, "
                                        "beyond the limit of 150000000"):
        support_from_bytes(data, data)
    assert time.perf_counter() - start < 5  # from the header: milliseconds (generous for a loaded machine)


def test_a_real_deep_png_is_refused_by_a_file_and_decodes_under_a_higher_limit(tmp_path):
    data = deep_png(3000, 3000, 16, 6, real=True)  # 72 MB decoded
    path = tmp_path / "deep.png"
    path.write_bytes(data)
    with pytest.raises(UserError, match="query image .* would decode to 72000000 bytes"):
        decode_image_bytes(data, "query image", max_pixels=20_000_000)  # the byte limit follows the pixel one
    from streamer.imageio import read_image as read

    image = read(path, "query image")  # the default limit allows it; normalised to 8-bit RGB at once
    assert image.shape == (3000, 3000, 3) and image.dtype == np.uint8


def test_the_byte_limit_is_a_typed_setting():
    from streamer.stream.config import ControlConfig

    assert ControlConfig().max_image_bytes == 150_000_000
    with pytest.raises(Exception, match="greater than or equal"):
        ControlConfig(max_image_bytes=10)
