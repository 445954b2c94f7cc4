"""Undecodable frames and unreadable files are skipped, counted (`corrupt`) and logged at a limited rate;
the stream goes on."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from streamer.sources.base import SourceEnded
from streamer.sources.corrupt import CorruptCounter
from streamer.sources.files import ImageFolderSource, VideoFileSource
from test_stream_doubles import blob_frame
from test_stream_loop import _config, _processor, _wait_for
from tests.peers.control_fuzz import png_header_only


def _read_all(source) -> int:
    source.open()
    frames = 0
    try:
        while True:
            if source.read(1.0) is not None:
                frames += 1
    except SourceEnded:
        return frames
    finally:
        source.close()


def _folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"good{i}.png"), blob_frame(3, seed=i))
    (folder / "garbage.png").write_bytes(b"not an image at all")
    (folder / "bomb.png").write_bytes(png_header_only(40_000, 40_000))
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def test_unreadable_images_in_a_folder_are_counted_and_skipped(tmp_path):
    source = ImageFolderSource(_folder(tmp_path), "f")
    counted = []
    source.corrupt.on_count = counted.append
    assert _read_all(source) == 3
    assert source.corrupt.total == 3 and sum(counted) == 3


@pytest.fixture
def mjpeg_avi(tmp_path):
    path = tmp_path / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(40):
        writer.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    writer.release()
    if not path.exists() or path.stat().st_size < 10_000:
        pytest.skip("OpenCV cannot write MJPEG AVI here")
    return path


def test_a_truncated_video_counts_its_missing_frames(mjpeg_avi, tmp_path):
    whole = VideoFileSource(mjpeg_avi, "v")
    assert _read_all(whole) == 40 and whole.corrupt.total == 0
    truncated = tmp_path / "truncated.avi"
    data = mjpeg_avi.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    source = VideoFileSource(truncated, "v")
    delivered = _read_all(source)
    assert 0 < delivered < 40
    assert source.corrupt.total == 40 - delivered


def test_garbage_in_the_middle_of_a_video_is_counted_and_the_rest_plays(mjpeg_avi, tmp_path):
    data = bytearray(mjpeg_avi.read_bytes())
    start = len(data) // 3
    data[start:start + 20_000] = np.random.default_rng(1).integers(0, 255, 20_000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    source = VideoFileSource(damaged, "v")
    delivered = _read_all(source)
    assert delivered > 20, "the frames after the damage still play"
    assert source.corrupt.total == 40 - delivered and source.corrupt.total >= 1


def test_corrupt_log_lines_are_rate_limited(caplog):
    counter = CorruptCounter("camera x", interval_s=3600)
    with caplog.at_level(logging.WARNING):
        for i in range(500):
            counter.add(1, f"frame {i}")
    assert counter.total == 500
    assert len([r for r in caplog.records if "undecodable" in r.getMessage()]) == 1


def test_corrupt_files_show_in_the_frames_metric(tmp_path):
    folder = _folder(tmp_path)
    config = _config(tmp_path, [{"uri": str(folder), "camera_id": "cam0", "every_frame": True}])
    proc = _processor(config, {"cam0": lambda: ImageFolderSource(folder, "cam0")})
    proc.start()
    try:
        assert _wait_for(proc.finished, 30)
        text = proc.metrics.exposition().decode()
    finally:
        proc.stop()
    assert 'persense_frames_total{camera="cam0",outcome="corrupt"} 3.0' in text
    assert 'persense_frames_total{camera="cam0",outcome="processed"} 3.0' in text
