"""GigE Vision source through Aravis against the real fake camera `arv-fake-gv-camera-0.8` on 127.0.0.1,
and the pixel format conversions. Skipped only where aravis-tools, gir1.2-aravis-0.8 or PyGObject are absent.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from waiting import wait_until
from streamer.errors import UserError
from streamer.sources import CameraSupervisor, SourceError, SourceState, open_source
from streamer.sources.gige import AravisSource, load_aravis, to_rgb
from tests.peers.procs import FakeGigECamera

S = SourceState


def _aravis_missing() -> str | None:
    missing = FakeGigECamera.missing()
    if missing:
        return missing
    try:
        load_aravis()
    except UserError as exc:
        return str(exc)
    return None


_MISSING = _aravis_missing()
needs_camera = pytest.mark.skipif(_MISSING is not None, reason=f"fake GigE Vision camera unavailable: {_MISSING}")


# -- pixel formats (no camera needed) -------------------------------------------------------------------

def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer filter whose top-left 2x2 cell is `pattern` (e.g. 'RGGB')."""
    channel = {"R": 0, "G": 1, "B": 2}
    out = np.zeros(rgb.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return out


@pytest.mark.parametrize("name, pattern", [("BayerRG8", "RGGB"), ("BayerGR8", "GRBG"), ("BayerGB8", "GBRG"),
                                           ("BayerBG8", "BGGR")])
def test_bayer_formats_give_the_right_colours(name, pattern):
    rgb = np.zeros((16, 20, 3), np.uint8)
    rgb[:, :10] = (200, 30, 10)  # reddish left half
    rgb[:, 10:] = (10, 40, 220)  # bluish right half
    out = to_rgb(mosaic(rgb, pattern).tobytes(), 20, 16, name)
    assert out.shape == (16, 20, 3) and out.dtype == np.uint8
    inner_left, inner_right = out[4:12, 2:7].reshape(-1, 3).mean(0), out[4:12, 13:18].reshape(-1, 3).mean(0)
    assert np.abs(inner_left - (200, 30, 10)).max() < 12
    assert np.abs(inner_right - (10, 40, 220)).max() < 12


def test_mono_rgb_bgr_formats():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(to_rgb(gray.tobytes(), 4, 3, "Mono8"), np.repeat(gray[:, :, None], 3, axis=2))
    wide = (gray.astype(np.uint16) << 8) | 0x7F
    assert np.array_equal(to_rgb(wide.tobytes(), 4, 3, "Mono16")[:, :, 0], gray)
    rgb = np.random.default_rng(0).integers(0, 255, (3, 4, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb(rgb.tobytes(), 4, 3, "RGB8"), rgb)
    assert np.array_equal(to_rgb(rgb[:, :, ::-1].tobytes(), 4, 3, "BGR8"), rgb)
    padded = rgb.tobytes() + b"\0" * 16  # payloads may carry trailing padding
    assert np.array_equal(to_rgb(padded, 4, 3, "RGB8"), rgb)


def test_bad_buffers_are_source_errors():
    with pytest.raises(SourceError, match="short RGB8 buffer"):
        to_rgb(b"\0" * 10, 4, 3, "RGB8")
    with pytest.raises(SourceError, match="unsupported pixel format YUV422"):
        to_rgb(b"\0" * 100, 4, 3, "YUV422_8")


# -- the fake camera -------------------------------------------------------------------------------------

@pytest.fixture
def camera():
    peer = FakeGigECamera()
    try:
        try:
            peer.start()
        except RuntimeError as exc:
            pytest.skip(str(exc))  # e.g. someone else's GigE device already owns 127.0.0.1:3956
        yield peer
    finally:
        peer.stop()


wait_for = wait_until


@needs_camera
def test_first_camera_streams_through_the_supervisor(camera):
    frames, states = [], []
    sup = CameraSupervisor("gige0", lambda: open_source("gige:", "gige0"), frames.append,
                           lambda c, s, r: states.append(s), stall_timeout=3.0, backoff_initial=0.2)
    try:
        started = time.time()
        sup.start()
        assert wait_for(lambda: len(frames) >= 5), f"no frames; states {states}"
    finally:
        sup.stop()
    frame = frames[-1]
    assert frame.image.shape == (512, 512, 3) and frame.image.dtype == np.uint8  # the fake camera's default
    assert [f.index for f in frames[:5]] == list(range(5))
    assert started <= frame.capture_ts <= time.time(), "capture_ts is the unix time of capture"
    assert states[:2] == [S.CONNECTING, S.STREAMING] and states[-1] == S.STOPPED
    assert not np.array_equal(frames[0].image, frames[4].image), "the fake camera's pattern moves"


@needs_camera
def test_camera_by_serial_with_format_region_and_rate(camera):
    source = open_source(f"gige:{camera.serial}", "gige0", pixel_format="RGB8", width=320, height=240, fps=20)
    assert isinstance(source, AravisSource) and source.live
    source.open()
    try:
        frames = [f for f in (source.read(1.0) for _ in range(10)) if f is not None]
    finally:
        source.close()
    assert len(frames) >= 5
    image = frames[-1].image
    assert image.shape == (240, 320, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1
    assert not np.array_equal(image[:, :, 0], image[:, :, 2]), "RGB8 delivers colour, not grey"
    source.close()  # twice is fine


@needs_camera
def test_camera_that_disappears_is_reconnected(camera):
    frames, states = [], []
    sup = CameraSupervisor("gige0", lambda: open_source(f"gige:{camera.serial}", "gige0"), frames.append,
                           lambda c, s, r: states.append(s), read_timeout=0.2, stall_timeout=1.0,
                           backoff_initial=0.2, backoff_max=0.5)
    try:
        sup.start()
        assert wait_for(lambda: len(frames) >= 3), f"no frames; states {states}"
        camera.stop()
        assert wait_for(lambda: S.STALLED in states), f"no stall; states {states}"
        camera.start()
        count = len(frames)
        assert wait_for(lambda: len(frames) >= count + 3), f"not reconnected; states {states}"
        assert sup.reconnects >= 1 and sup.state == S.STREAMING
        assert states[:2] == [S.CONNECTING, S.STREAMING] and S.ENDED not in states
    finally:
        sup.stop()


@needs_camera
def test_unknown_camera_name_fails_to_open(camera):
    source = open_source("gige:NO-SUCH-CAMERA", "gige0")
    with pytest.raises(SourceError, match="cannot open GigE camera NO-SUCH-CAMERA"):
        source.open()



# -- pixel formats we cannot convert are configuration errors ----------------------------------------------

class _StubCamera:
    """The few calls AravisSource makes on an Aravis.Camera, for a camera that streams YUV422_8."""

    def __init__(self, pixel_format: str) -> None:
        self.pixel_format = pixel_format
        self.acquiring = False

    def set_acquisition_mode(self, mode) -> None:
        pass

    def get_pixel_format_as_string(self) -> str:
        return self.pixel_format

    def get_payload(self) -> int:
        return 64

    def create_stream(self, callback, data):
        raise AssertionError("no stream may be created for a format that cannot be converted")

    def start_acquisition(self) -> None:
        self.acquiring = True


class _StubAravis:
    """Stands in for the Aravis GI module: one device, whose camera sends `pixel_format`."""

    class AcquisitionMode:
        CONTINUOUS = 1

    def __init__(self, pixel_format: str) -> None:
        self.opened = 0
        stub = self

        class Camera:
            @staticmethod
            def new(name):
                stub.opened += 1
                return _StubCamera(pixel_format)

        self.Camera = Camera

    def update_device_list(self) -> None:
        pass

    def get_n_devices(self) -> int:
        return 1

    def __getattr__(self, name):  # get_device_id, get_device_address, ...
        if name.startswith("get_device_"):
            return lambda i: "127.0.0.1"
        raise AttributeError(name)


def test_unsupported_camera_format_is_a_user_error_not_a_reconnect_loop(monkeypatch):
    import streamer.sources.gige as gige

    aravis = _StubAravis("YUV422_8")
    monkeypatch.setattr(gige, "load_aravis", lambda: aravis)
    source = open_source("gige:", "gige0")
    with pytest.raises(UserError, match="sends pixel format YUV422_8, which is not supported; set the pixel_format"):
        source.open()

    states = []
    sup = CameraSupervisor("gige0", lambda: open_source("gige:", "gige0"), lambda f: None,
                           lambda c, s, r: states.append(s), backoff_initial=0.01, backoff_max=0.01)
    sup.start()
    sup._thread.join(10)
    assert not sup.is_alive() and states == [S.CONNECTING, S.ENDED]
    assert sup.reconnects == 0 and "YUV422_8" in sup.error and aravis.opened == 2


def test_unsupported_requested_format_is_refused_before_any_camera(monkeypatch):
    import streamer.sources.gige as gige

    monkeypatch.setattr(gige, "load_aravis", lambda: _StubAravis("Mono8"))
    with pytest.raises(UserError, match="pixel_format Mono12 is not supported"):
        open_source("gige:", "gige0", pixel_format="Mono12")
