"""Image bounds and conversions (streamer.imageio) at their edges, from the sender's side: a file past the size
limit, a header that understates what the decoder makes of the data, empty and strided arrays, every suffix rule
of the writer. Arrays of a few pixels: milliseconds, so tools/mutation.py runs them for every mutant.
"""

from __future__ import annotations

import os
import tracemalloc

import cv2
import numpy as np
import pytest

import streamer.imageio as imageio
from streamer.errors import UserError
from streamer.image_header import Header
from streamer.imageio import MAX_IMAGE_FILE_BYTES, decode_image_bytes, read_image, read_mask, to_rgb8, write_image


def _png(array) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def _refused(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_an_image_file_past_the_size_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as f:  # sparse: nothing is written but its size
        f.truncate(MAX_IMAGE_FILE_BYTES + 1)
    for read, what in ((read_image, "query image"), (read_mask, "mask")):
        assert _refused(read, big, what) == (f"{what} {big} has {MAX_IMAGE_FILE_BYTES + 1} bytes; the limit is "
                                             f"{MAX_IMAGE_FILE_BYTES}")
    assert _refused(read_image, str(tmp_path / "none.png")) == f"image not found: {tmp_path / 'none.png'}"
    assert _refused(read_mask, tmp_path) == f"mask is a directory, not a file: {tmp_path}"


def test_files_decode_with_their_name_in_any_error(tmp_path):
    bgr = np.zeros((3, 4, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    (tmp_path / "a.png").write_bytes(_png(bgr))
    assert read_image(str(tmp_path / "a.png")).tolist() == [[[0, 0, 200]] * 4] * 3
    gray = np.zeros((2, 2), np.uint8)
    gray[1, 0] = 1
    (tmp_path / "m.png").write_bytes(_png(gray))
    assert read_mask(str(tmp_path / "m.png")).tolist() == [[False, False], [True, False]]
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    assert _refused(read_image, tmp_path / "bad.png", "support") == f"support is not a readable image: {tmp_path}/bad.png"
    assert _refused(read_mask, tmp_path / "bad.png") == f"mask is not a readable image: {tmp_path}/bad.png"


def test_a_header_that_understates_the_image_is_caught_after_decoding(monkeypatch):
    data = _png(np.zeros((10, 20, 3), np.uint8))  # 200 pixels, 600 bytes decoded
    # A header parser fooled into reading a 1x1 image: the decoded array is checked against the limits again.
    monkeypatch.setattr(imageio, "read_header", lambda buffer: Header("PNG", 1, 1, 3, 1))
    assert decode_image_bytes(data, "q", max_pixels=200, max_bytes=600).shape == (10, 20, 3)
    assert _refused(decode_image_bytes, data, "q", max_pixels=199, max_bytes=10_000) == (
        f"q decodes to more than its header said ({len(data)} bytes)")
    assert _refused(decode_image_bytes, data, "q", source="x.png", max_pixels=10_000, max_bytes=599) == (
        "q decodes to more than its header said: x.png")
    # The default byte limit follows the pixel limit: 3 bytes per pixel.
    deep = _png(np.zeros((10, 20, 3), np.uint16))  # 1200 bytes decoded
    assert _refused(decode_image_bytes, deep, "q", max_pixels=399).startswith("q decodes to more than")
    assert decode_image_bytes(deep, "q", max_pixels=400).dtype == np.uint16


def test_limits_name_the_image_and_its_cost_exactly():
    data = _png(np.zeros((10, 20, 3), np.uint16))
    assert _refused(decode_image_bytes, data, "upload", max_pixels=199) == (
        f"upload of 20x10 pixels exceeds the limit of 199 pixels ({len(data)} bytes)")
    assert _refused(decode_image_bytes, data, "upload", max_pixels=200, max_bytes=1199) == (
        f"upload (20x10, 3 channel(s) of 16-bit integer samples) would decode to 1200 bytes, beyond the limit of "
        f"1199 ({len(data)} bytes)")
    assert decode_image_bytes(np.frombuffer(data, np.uint8), "upload", max_bytes=1200).shape == (10, 20, 3)


def test_odd_values_convert_exactly():
    assert to_rgb8(np.full((1, 2), -5.0, np.float32)).tolist() == [[[0, 0, 0], [0, 0, 0]]]
    assert to_rgb8(np.array([[1.0, 2.0]], np.float64)).tolist() == [[[127, 127, 127], [255, 255, 255]]]
    assert to_rgb8(np.array([[0.5, 1.0]], np.float64)).tolist() == [[[127, 127, 127], [255, 255, 255]]]
    assert to_rgb8(np.array([[[1, 2, 3, 4]]], np.uint16) * 256).tolist() == [[[3, 2, 1]]]  # BGRA, 16 bit


def test_in_place_conversion_uses_the_callers_memory_only_where_it_can():
    floats = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    assert to_rgb8(floats, in_place=True).tolist() == [[[255, 127, 0]]]
    assert floats.tolist() == [[[0.0, 127.5, 255.0]]]  # scaled where it lay: no second full-size copy
    frozen = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    frozen.flags.writeable = False
    assert to_rgb8(frozen, in_place=True).tolist() == [[[255, 127, 0]]] and frozen.tolist() == [[[0.0, 0.5, 1.0]]]
    doubles = np.array([[[0.0, 0.5, 1.0]]], np.float64)
    assert to_rgb8(doubles, in_place=True).tolist() == [[[255, 127, 0]]] and doubles.tolist() == [[[0.0, 0.5, 1.0]]]
    bgr = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    out = to_rgb8(bgr, in_place=True)
    assert out.tolist() == [[[3, 2, 1], [6, 5, 4]]] and np.shares_memory(out, bgr)
    wide = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    strided = wide[:, ::2]  # not contiguous: converted into new memory, the caller's left alone
    before = wide.copy()
    assert to_rgb8(strided, in_place=True).tolist() == strided[..., ::-1].tolist()
    assert (wide == before).all()
    locked = np.array([[[1, 2, 3]]], np.uint8)
    locked.flags.writeable = False
    assert to_rgb8(locked, in_place=True).tolist() == [[[3, 2, 1]]] and locked.tolist() == [[[1, 2, 3]]]


def test_the_writer_picks_its_encoder_and_quality_by_suffix(tmp_path):
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 255, (32, 32, 3), np.uint8)
    write_image(tmp_path / "low.JPG", noisy, quality=10)  # the suffix's case does not matter
    write_image(tmp_path / "high.jpeg", noisy, quality=95)
    assert (tmp_path / "low.JPG").read_bytes()[:2] == b"\xff\xd8"
    assert (tmp_path / "low.JPG").stat().st_size < (tmp_path / "high.jpeg").stat().st_size
    write_image(tmp_path / "default.jpg", noisy)  # 90 by default: between the two
    assert (tmp_path / "low.JPG").stat().st_size < (tmp_path / "default.jpg").stat().st_size < (
        tmp_path / "high.jpeg").stat().st_size
    write_image(tmp_path / "exact.png", noisy)
    assert read_image(tmp_path / "exact.png").tolist() == noisy.tolist()  # lossless, colours in RGB order
    write_image(tmp_path / "noname", noisy)  # no suffix: PNG
    assert (tmp_path / "noname").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _refused(write_image, tmp_path / "a.xyz", noisy) == f"cannot write {tmp_path}/a.xyz: no image encoder for .xyz"
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _refused(write_image, blocker / "b.png", noisy) == (
        f"cannot write {blocker}/b.png: {os.strerror(17)}")  # its folder exists, as a file


def test_the_writers_defaults_and_each_jpeg_suffix_take_the_quality(tmp_path):
    noisy = np.random.default_rng(2).integers(0, 255, (32, 32, 3), np.uint8)
    write_image(tmp_path / "default.jpg", noisy)
    write_image(tmp_path / "ninety.jpg", noisy, quality=90)
    assert (tmp_path / "default.jpg").read_bytes() == (tmp_path / "ninety.jpg").read_bytes()
    write_image(tmp_path / "a.jpeg", noisy, quality=10)
    write_image(tmp_path / "b.jpg", noisy, quality=10)
    assert (tmp_path / "a.jpeg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    write_image(tmp_path / "deep" / "er" / "c.png", noisy)  # missing folders are made, however deep
    assert read_image(tmp_path / "deep" / "er" / "c.png").tolist() == noisy.tolist()


def test_a_gray_image_is_written_with_one_channel(tmp_path):
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 255
    write_image(tmp_path / "mask.png", mask)
    raw = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert raw.shape == (4, 6) and raw.tolist() == mask.tolist()


def _peak_bytes(call) -> int:
    """The most memory numpy and OpenCV's arrays held at once during `call()`, beyond what they held before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del result
    return peak


def test_conversions_hold_no_second_full_size_copy(tmp_path, monkeypatch):
    # A large upload's peak: the decoded image and its RGB version share memory (read_image converts in place),
    # and a float image is scaled in one float32 working copy (not float64, not a second one for the clip).
    y, x = np.mgrid[:1000, :2000]
    image = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)  # 6 MB decoded, 1 MB as PNG
    (tmp_path / "big.png").write_bytes(_png(image))
    # Read the file's bytes as they are (read_regular reserves its whole limit for one read).
    monkeypatch.setattr(imageio, "read_regular", lambda path, what, limit: path.read_bytes())
    decoded = image.nbytes
    assert _peak_bytes(lambda: read_image(tmp_path / "big.png")) < 1.5 * decoded
    floats = np.random.default_rng(0).random(image.shape)  # float64: 48 MB
    assert _peak_bytes(lambda: to_rgb8(floats)) < 5.5 * decoded  # float32 copy (4x) and the result (1x)


def test_every_jpeg_suffix_is_written_at_the_quality_asked_for(tmp_path):
    """OpenCV's JPEG encoder answers to .jpg, .jpeg and .jpe: each gets `quality` (a .jpe was written at OpenCV's
    own 95 while .jpg got 90; a second reader's case)."""
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    expected = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    for suffix in (".jpg", ".jpeg", ".jpe", ".JPE"):
        write_image(tmp_path / f"out{suffix}", image, quality=70)
        assert (tmp_path / f"out{suffix}").read_bytes() == expected, suffix
