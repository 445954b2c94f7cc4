"""Exact bounds of what comes from outside: control requests (streamer.stream.requests) and images
(streamer.imageio), each limit tried at the limit and one past it, from the sender's side.

Pure functions over bytes and arrays: milliseconds, so tools/mutation.py runs them for every mutant.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from streamer.errors import UserError
from streamer.imageio import decode_image_bytes, mask_from_raw, read_image, read_mask, to_rgb8, write_image
from streamer.stream.requests import MAX_FRAMES, MAX_JSON_BYTES, MAX_JSON_DEPTH, json_depth_exceeds, parse_request


# -- control requests ---------------------------------------------------------------------------------------------
def _refused(frames, limit=10_000) -> str:
    with pytest.raises(UserError) as caught:
        parse_request(frames, limit)
    return str(caught.value)


def test_a_request_is_parsed_into_its_object_and_binary_frames():
    request, binary = parse_request([b'{"cmd": "set_support", "n": [1, {"a": 2}]}', b"img", bytearray(b"m")], 100)
    assert request == {"cmd": "set_support", "n": [1, {"a": 2}]} and binary == [b"img", b"m"]
    assert parse_request([memoryview(b'{"cmd": "status"}')], 17) == ({"cmd": "status"}, [])


def test_frame_count_and_total_size_are_bounded_at_the_limit():
    status = b'{"cmd":"status"}'
    assert _refused([]) == 'empty request: send a JSON object such as {"cmd": "status"}'
    assert parse_request([status] + [b""] * (MAX_FRAMES - 1), 100)[1] == [b""] * (MAX_FRAMES - 1)
    assert f"request of {MAX_FRAMES + 1} frames; at most {MAX_FRAMES}" in _refused([status] + [b""] * MAX_FRAMES)
    total = len(status) + 10
    assert parse_request([status, b"x" * 10], total)[1] == [b"x" * 10]
    assert f"request of {total + 1} bytes exceeds the limit of {total}" in _refused([status, b"x" * 11], total)


def test_the_json_frame_is_bounded_at_its_own_limit():
    padded = json.dumps({"cmd": "status", "pad": ""}).encode()
    exact = json.dumps({"cmd": "status", "pad": "x" * (MAX_JSON_BYTES - len(padded))}).encode()
    assert len(exact) == MAX_JSON_BYTES and parse_request([exact], 1 << 20)[0]["cmd"] == "status"
    over = exact[:-2] + b'x"}'
    assert f"the JSON frame has {MAX_JSON_BYTES + 1} bytes; at most {MAX_JSON_BYTES}" in _refused([over], 1 << 20)


def test_nesting_is_bounded_at_the_limit_before_parsing():
    def nested(depth):
        return b'{"cmd": "status", "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    assert parse_request([nested(MAX_JSON_DEPTH)], 10_000)[0]["cmd"] == "status"
    assert f"nests deeper than {MAX_JSON_DEPTH} levels" in _refused([nested(MAX_JSON_DEPTH + 1)])


def test_the_depth_scan_counts_brackets_outside_strings_only():
    assert not json_depth_exceeds(b"[[]]", 2) and json_depth_exceeds(b"[[[]]]", 2)
    assert not json_depth_exceeds(b"[][][][]", 1)  # closing brackets bring the depth back down...
    assert json_depth_exceeds(b"[[]][[[", 2)  # ... by one each
    assert json_depth_exceeds(b"{[", 1) and not json_depth_exceeds(b"{}", 1)
    assert not json_depth_exceeds(b'["[[[", "]]]["]', 1)
    assert not json_depth_exceeds(b'["\\\\", "[["]', 1)  # an escaped backslash does not escape the quote after it
    assert json_depth_exceeds(b'["\\\\", [[]]]', 2)
    assert json_depth_exceeds(b'["\\"", [[]]]', 2)  # an escaped quote does not end the string
    assert not json_depth_exceeds(b"", 0) and json_depth_exceeds(b"[", 0)


@pytest.mark.parametrize("head", [b"not json", b"\xff\xfe", b"{"])
def test_what_is_not_json_is_one_line(head):
    assert _refused([head]) == 'the first frame must be a JSON object such as {"cmd": "status"}'


@pytest.mark.parametrize("head", [b'{"cmd": 1}', b"[]", b'"status"', b'{"command": "x"}'])
def test_json_without_a_cmd_string_is_one_line(head):
    assert _refused([head]) == 'the request must be a JSON object with a "cmd" string, e.g. {"cmd": "status"}'


# -- images -------------------------------------------------------------------------------------------------------
def _png(array) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def test_pixel_and_byte_limits_hold_at_the_limit_and_one_past_it():
    data = _png(np.zeros((10, 20, 3), np.uint8))
    assert decode_image_bytes(data, "support", max_pixels=200).shape == (10, 20, 3)
    message = str(pytest.raises(UserError, decode_image_bytes, data, "support", max_pixels=199).value)
    assert "support of 20x10 pixels exceeds the limit of 199 pixels" in message and "bytes)" in message
    assert decode_image_bytes(data, "x", max_pixels=1000, max_bytes=600).shape == (10, 20, 3)
    message = str(pytest.raises(UserError, decode_image_bytes, data, "x", source="a.png", max_pixels=1000,
                                max_bytes=599).value)
    assert "would decode to 600 bytes, beyond the limit of 599: a.png" in message
    # The default byte limit is 3 bytes per allowed pixel: an 8-bit RGB image at the pixel limit passes...
    assert decode_image_bytes(data, "x", max_pixels=200).shape == (10, 20, 3)
    # ... a 16-bit one of the same size does not.
    deep = _png(np.zeros((10, 20, 3), np.uint16))
    assert "would decode to 1200 bytes" in str(pytest.raises(UserError, decode_image_bytes, deep, "x",
                                                             max_pixels=200).value)


def test_what_is_not_an_image_is_named_with_its_source_or_size():
    assert str(pytest.raises(UserError, decode_image_bytes, b"", "mask").value) == "mask is not a readable image (0 " \
                                                                                  "bytes)"
    message = str(pytest.raises(UserError, decode_image_bytes, b"GIF89a" + b"\0" * 20, "q", source="f.gif").value)
    assert message == "q is not a readable image: f.gif"
    header_only = _png(np.zeros((4, 4), np.uint8))[:40]  # a PNG header, its data cut away
    assert "is not a readable image" in str(pytest.raises(UserError, decode_image_bytes, header_only, "q").value)


def test_to_rgb8_converts_every_depth_and_layout():
    bgr = np.array([[[10, 20, 30]]], np.uint8)
    assert to_rgb8(bgr).tolist() == [[[30, 20, 10]]] and bgr.tolist() == [[[10, 20, 30]]]
    copy = bgr.copy()
    assert to_rgb8(copy, in_place=True).tolist() == [[[30, 20, 10]]]
    assert to_rgb8(np.array([[[10, 20, 30, 0]]], np.uint8)).tolist() == [[[30, 20, 10]]]
    assert to_rgb8(np.array([[7]], np.uint8)).tolist() == [[[7, 7, 7]]]
    assert to_rgb8(np.array([[[7]]], np.uint8)).tolist() == [[[7, 7, 7]]]
    assert to_rgb8(np.array([[[0x1234, 0xFF00, 0x00FF]]], np.uint16)).tolist() == [[[0, 0xFF, 0x12]]]
    # Floats: within 0..1 scaled by 255, beyond it scaled by their peak.
    unit = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    assert to_rgb8(unit).tolist() == [[[255, 127, 0]]] and unit.tolist() == [[[0.0, 0.5, 1.0]]]
    assert to_rgb8(unit.copy(), in_place=True).tolist() == [[[255, 127, 0]]]
    assert to_rgb8(np.array([[[0.0, 500.0, 1000.0]]], np.float64)).tolist() == [[[255, 127, 0]]]
    assert to_rgb8(np.array([[-3.0, 0.5]], np.float32)).tolist() == [[[0, 0, 0], [127, 127, 127]]]
    assert to_rgb8(np.zeros((1, 1, 3), np.float32)).tolist() == [[[0, 0, 0]]]


def test_masks_read_colour_then_alpha():
    colour = np.zeros((2, 2, 4), np.uint8)
    colour[0, 0, 2], colour[:, :, 3] = 9, 255  # painted in one colour channel under an opaque alpha
    assert mask_from_raw(colour).tolist() == [[True, False], [False, False]]
    alpha = np.zeros((2, 2, 4), np.uint8)
    alpha[1, 1, 3] = 1
    assert mask_from_raw(alpha).tolist() == [[False, False], [False, True]]
    assert mask_from_raw(np.array([[[0, 0, 3]]], np.uint8)).tolist() == [[True]]
    assert mask_from_raw(np.array([[[0], [5]]], np.uint8)).tolist() == [[False, True]]
    assert mask_from_raw(np.array([[[0, 4]]], np.uint8)).tolist() == [[False]]  # gray + alpha: the gray
    assert mask_from_raw(np.array([[0, 65535]], np.uint16)).tolist() == [[False, True]]


def test_write_and_read_back(tmp_path):
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, :, 0] = 200  # red
    write_image(tmp_path / "sub" / "a.png", image)
    assert read_image(tmp_path / "sub" / "a.png").tolist() == image.tolist()
    write_image(tmp_path / "g.png", image[:, :, 0])
    assert read_mask(tmp_path / "g.png").all()
    write_image(tmp_path / "q.jpg", image, quality=5)
    low = (tmp_path / "q.jpg").stat().st_size
    write_image(tmp_path / "q.jpg", np.random.default_rng(0).integers(0, 255, (6, 8, 3), np.uint8), quality=100)
    assert (tmp_path / "q.jpg").stat().st_size > low
    with pytest.raises(UserError, match="no image encoder for .xyz"):
        write_image(tmp_path / "a.xyz", image)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        write_image(tmp_path / "file" / "b.png", image)
