"""One decoding path for support images and masks: a file (read_image, read_mask), the bytes of a
set_support request (support_from_bytes) and a folder source's images give the same arrays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.errors import UserError
from streamer.imageio import read_image, read_mask
from streamer.sources.files import ImageFolderSource
from streamer.stream.support import support_from_bytes

H, W = 8, 8
OBJECT = np.zeros((H, W), bool)
OBJECT[2:4, 5:7] = True  # 4 pixels


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def _masks() -> dict[str, np.ndarray]:
    """Mask encodings a user may send, each marking OBJECT (arrays in OpenCV's BGR(A) order)."""
    on = OBJECT.astype(np.uint8) * 255
    painted_rgba = np.dstack([on, on, on, np.full((H, W), 255, np.uint8)])  # opaque everywhere
    alpha_only = np.dstack([np.zeros((H, W, 3), np.uint8), on])  # transparent outside the object
    red = np.dstack([np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8), on])
    return {
        "gray8": on,
        "gray16": OBJECT.astype(np.uint16) * 65535,
        "red-bgr": red,
        "rgba-opaque-alpha": painted_rgba,
        "rgba-alpha-only": alpha_only,
    }


@pytest.mark.parametrize("kind", list(_masks()))
def test_a_mask_reads_the_same_from_a_file_and_from_the_control_socket(tmp_path, kind):
    mask_png = _png(_masks()[kind])
    path = tmp_path / f"{kind}.png"
    path.write_bytes(mask_png)
    image_png = _png(np.full((H, W, 3), 90, np.uint8))
    from_file = read_mask(path, "support mask")
    _, from_bytes = support_from_bytes(image_png, mask_png)
    assert from_file.dtype == from_bytes.dtype == bool
    assert np.array_equal(from_file, OBJECT), f"file: {int(from_file.sum())} pixels"
    assert np.array_equal(from_bytes, OBJECT), f"bytes: {int(from_bytes.sum())} pixels"


def test_an_rgba_image_reads_the_same_from_a_file_a_folder_and_the_socket(tmp_path):
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 255, (H, W, 4), dtype=np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "0.png").write_bytes(_png(bgra))
    from_file = read_image(folder / "0.png")
    from_bytes, _ = support_from_bytes(_png(bgra), _png(OBJECT.astype(np.uint8)))
    source = ImageFolderSource(folder, "cam0")
    source.open()
    from_folder = source.read(1.0).image
    assert np.array_equal(from_file, bgra[:, :, 2::-1])
    assert np.array_equal(from_bytes, from_file) and np.array_equal(from_folder, from_file)


def test_bytes_that_are_not_an_image_are_one_line():
    with pytest.raises(UserError, match=r"^support mask is not a readable image \(9 bytes\)$"):
        support_from_bytes(_png(np.zeros((H, W, 3), np.uint8)), b"not a png")
    with pytest.raises(UserError, match=r"^support image is not a readable image \(0 bytes\)$"):
        support_from_bytes(b"", b"")
