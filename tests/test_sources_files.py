"""Video file, image folder and simulator sources, and the pacer; real files written to tmp_path."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from streamer.errors import UserError
from streamer.simulator import ConveyorSimulator
from streamer.sources import CameraSupervisor, SourceEnded, SourceState, open_source
from streamer.sources.files import ImageFolderSource, VideoFileSource
from streamer.sources.pacing import Pacer
from streamer.sources.sim import SimulatorSource


def bar_position(rgb: np.ndarray) -> int:
    """Column of the white bar's left edge (the frames below draw one at 5 * index)."""
    return int(np.argmax(rgb[:, :, 0].mean(axis=0) > 128))


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "bars.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(12):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, i * 5 : i * 5 + 5] = 255
        writer.write(frame)
    writer.release()
    return path


def read_all(source, limit: int = 100) -> list:
    frames = []
    source.open()
    try:
        while len(frames) < limit:
            try:
                frame = source.read(1.0)
            except SourceEnded:
                break
            if frame is not None:
                frames.append(frame)
    finally:
        source.close()
    return frames


def test_video_file_plays_once_in_order(video):
    source = open_source(str(video), "cam0")
    assert isinstance(source, VideoFileSource) and source.live is False
    frames = read_all(source)
    assert len(frames) == 12
    assert [f.index for f in frames] == list(range(12))
    assert [bar_position(f.image) for f in frames] == [5 * i for i in range(12)]
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert all(f.camera == "cam0" and f.truth_count is None for f in frames)


def test_video_file_loops(video):
    frames = read_all(open_source(str(video), "cam0", loop=True), limit=30)
    assert len(frames) == 30
    assert [bar_position(f.image) for f in frames[12:24]] == [5 * i for i in range(12)]
    assert frames[29].index == 29, "the index keeps counting across loops"


def test_undecodable_video_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    source = open_source(str(bad), "cam0")
    with pytest.raises(UserError, match="cannot decode video file"):
        source.open()
    states = []
    sup = CameraSupervisor("cam0", lambda: open_source(str(bad), "cam0"), lambda f: None,
                           lambda c, s, r: states.append(s))
    sup.start()
    sup._thread.join(10)
    assert states == [SourceState.CONNECTING, SourceState.ENDED] and "cannot decode" in sup.error



def test_text_file_named_png_is_a_user_error_on_the_first_read(tmp_path):
    # OpenCV's image-sequence backend opens it; only the first read fails. That is bad input, not an empty video.
    text = tmp_path / "text.png"
    text.write_text("hello, not an image\n")
    for loop in (False, True):
        source = open_source(str(text), "cam0", loop=loop)
        try:
            source.open()
            with pytest.raises(UserError, match=f"cannot decode any frame of {text}"):
                source.read(1.0)
        except UserError as exc:  # a build of OpenCV that refuses to open it is just as good
            assert "cannot decode" in str(exc)
        finally:
            source.close()
    sup = CameraSupervisor("cam0", lambda: open_source(str(text), "cam0"), lambda f: None, lambda c, s, r: None)
    sup.start()
    sup._thread.join(10)
    assert sup.state == SourceState.ENDED and "cannot decode" in (sup.error or "")


def write_png(path, value: int) -> None:
    cv2.imwrite(str(path), np.full((20, 30, 3), value, np.uint8))


def test_image_folder_natural_order_skips_bad_files(tmp_path, caplog):
    for name, value in [("f10.png", 10), ("f2.png", 2), ("f1.png", 1), ("F3.jpg", 3)]:
        write_png(tmp_path / name, value)
    (tmp_path / "f4.png").write_bytes(b"broken")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    source = open_source(str(tmp_path), "cam0")
    assert isinstance(source, ImageFolderSource) and source.live is False
    frames = read_all(source)
    values = [int(f.image[0, 0, 0]) for f in frames]
    assert values[:2] == [1, 2] and abs(values[2] - 3) <= 2 and values[3] == 10  # jpeg may shift a level
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert "skipping" in caplog.text and "f4.png" in caplog.text


def test_image_folder_loops(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"{i}.png", 50 * i)
    frames = read_all(open_source(str(tmp_path), "cam0", loop=True), limit=7)
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 50, 100, 0, 50, 100, 0]


def test_empty_folder_is_a_user_error(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        open_source(str(tmp_path), "cam0").open()


def test_simulator_source_matches_the_simulator_and_carries_truth():
    source = open_source("sim:?objects=12&distractors=2&width=160&height=120&fps=0&seed=3", "sim0")
    assert isinstance(source, SimulatorSource) and source.live is True
    frames = read_all(source, limit=3)
    reference = ConveyorSimulator(160, 120, 12, 2, 4.0, 3)
    for i, frame in enumerate(frames):
        scene = reference.frame(i)
        assert frame.index == i and frame.camera == "sim0"
        assert np.array_equal(frame.image, scene.image)
        assert frame.truth_count == scene.count and scene.count > 0
    assert not np.array_equal(frames[0].image, frames[1].image), "the belt moves"
    image, mask = source.support()
    assert image.shape[:2] == mask.shape and mask.dtype == bool and mask.any()


def test_simulator_frames_option_ends_the_stream():
    frames = read_all(open_source("sim:?width=64&height=48&objects=3&fps=0&frames=4", "s"))
    assert len(frames) == 4


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_pacer_releases_at_the_rate_and_honours_the_timeout():
    t = FakeTime()
    pacer = Pacer(10.0, clock=t.clock, sleep=t.sleep)
    assert pacer.wait(1.0)  # the first frame is due at once
    assert pacer.wait(1.0) and pacer.wait(1.0)
    assert t.sleeps == [0.1, 0.1] and t.now == pytest.approx(0.2)
    assert pacer.wait(0.03) is False  # due in 0.1 s, more than the timeout
    assert t.sleeps[-1] == 0.03
    assert pacer.wait(1.0) and t.now == pytest.approx(0.3)
    t.now += 5.0  # the consumer fell far behind: no burst of catch-up frames
    assert pacer.wait(1.0) and pacer.wait(1.0)
    assert t.sleeps[-1] == pytest.approx(0.1)


def test_pacer_off_never_sleeps():
    t = FakeTime()
    pacer = Pacer(None, clock=t.clock, sleep=t.sleep)
    assert all(pacer.wait(0.0) for _ in range(5)) and t.sleeps == []


def test_simulator_is_paced_through_the_supervisor():
    frames = []
    sup = CameraSupervisor("sim", lambda: open_source("sim:?width=64&height=48&objects=3&fps=50&frames=10", "sim"),
                           frames.append)
    sup.start()
    sup._thread.join(20)
    assert len(frames) == 10 and sup.state == SourceState.ENDED
    spacing = np.diff([f.capture_ts for f in frames])
    # Paced, not a burst: the mean spacing is near 1/50 s (loose bound: a loaded machine only makes it larger).
    assert spacing.mean() >= 0.015


def test_missing_video_file_names_the_path(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UserError, match="source not found: .*nope.mp4"):
        open_source(str(tmp_path / "nope.mp4"), "cam0")
