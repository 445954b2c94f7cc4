"""Files named from outside that are not regular files (FIFOs, devices) are refused at once with one line,
and the inputs after them are still processed; write errors name their cause. (Issue 24, item 6.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.errors import UserError
from streamer.imageio import read_image, write_image
from streamer.simulator import render_scene, render_support
from streamer.sources.files import ImageFolderSource
from streamer.sources.uri import source_kind

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "query.png"
    os.mkfifo(path)  # nobody writes: a plain open() for reading would block for ever
    return path


@pytest.mark.timeout(30)
@pytest.mark.parametrize("what", ["fifo", "device"])
def test_a_fifo_or_a_device_is_not_read(what, fifo):
    path = fifo if what == "fifo" else Path("/dev/zero")
    with pytest.raises(UserError, match="is not a regular file"):
        read_image(path, "query image")
    with pytest.raises(UserError, match="is not a regular file"):
        source_kind(str(path))


@pytest.mark.timeout(120)
def test_segment_refuses_a_fifo_and_a_device_in_one_line_and_processes_the_later_queries(tmp_path, fifo):
    image, mask = render_support(seed=3, object_radius=24)
    cv2.imwrite(str(tmp_path / "s.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "m.png"), mask.astype(np.uint8) * 255)
    scene = render_scene(320, 240, n_objects=8, n_distractors=2, seed=5, object_radius=24)
    cv2.imwrite(str(tmp_path / "later.png"), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    for bad in (fifo, Path("/dev/zero")):
        done = subprocess.run(
            [sys.executable, "-m", "streamer", "-q", "segment", "--support", str(tmp_path / "s.png"),
             "--support-mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "out"), str(bad),
             str(tmp_path / "later.png")],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=100)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "is not a regular file" in lines[0] and str(bad) in lines[0] and "Traceback" not in done.stderr
        assert (tmp_path / "out" / "later.json").exists()  # the query after it was processed
        (tmp_path / "out" / "later.json").unlink()


@pytest.mark.timeout(30)
def test_a_folder_source_skips_a_fifo(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), 80, np.uint8))
    source = ImageFolderSource(tmp_path, "cam0")
    source.open()
    # Swapped in after the listing (the listing itself leaves FIFOs out): read, it would block the camera.
    os.mkfifo(tmp_path / "b.png")
    source._files.append(tmp_path / "b.png")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((20, 30, 3), 90, np.uint8))
    source._files.append(tmp_path / "c.png")
    assert source.read(1.0).image.shape == (20, 30, 3)
    assert source.read(1.0).image[0, 0, 0] == 90  # the FIFO was skipped, the next image read
    assert source.corrupt.total == 1


def test_write_errors_name_their_cause(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with pytest.raises(UserError, match="No space left on device"):
        write_image(Path("/dev/full"), np.zeros((8, 8), np.uint8))
    # A folder that is a file: fails for root too (CI runs as root, where permissions are not enforced).
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(UserError, match="File exists|Not a directory"):
        write_image(not_a_folder / "x.png", np.zeros((8, 8), np.uint8))
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    if not os.access(read_only, os.W_OK):  # a user other than root: permissions are enforced
        with pytest.raises(UserError, match="Permission denied"):
            write_image(read_only / "x.png", np.zeros((8, 8), np.uint8))
