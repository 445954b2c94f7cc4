"""GigE Vision / GenICam cameras through Aravis (libaravis 0.8 via PyGObject).

Needs Debian's gir1.2-aravis-0.8 and the `gige` extra (PyGObject). Pixel formats Mono8/16, RGB8, BGR8 and
the 8-bit Bayer mosaics are converted to RGB.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np

from streamer.errors import UserError, first_line
from streamer.sources.base import Frame, SourceError

log = logging.getLogger(__name__)

# GenICam pixel format name -> how to turn the buffer into RGB: (channels, bytes per sample, cv2 code or None)
_FORMATS: dict[str, tuple[int, int, int | None]] = {
    "Mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "Mono16": (1, 2, cv2.COLOR_GRAY2RGB),
    "RGB8": (3, 1, None),
    "RGB8Packed": (3, 1, None),
    "BGR8": (3, 1, cv2.COLOR_BGR2RGB),
    "BGR8Packed": (3, 1, cv2.COLOR_BGR2RGB),
    # GenICam names the top-left 2x2 cell; so do OpenCV's RGGB-style aliases.
    "BayerRG8": (1, 1, cv2.COLOR_BayerRGGB2RGB),
    "BayerGR8": (1, 1, cv2.COLOR_BayerGRBG2RGB),
    "BayerGB8": (1, 1, cv2.COLOR_BayerGBRG2RGB),
    "BayerBG8": (1, 1, cv2.COLOR_BayerBGGR2RGB),
}


def load_aravis() -> Any:
    """The Aravis GI module; UserError with the install hint if PyGObject or the typelib is missing."""
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as exc:
        raise UserError(
            "GigE Vision needs Aravis: apt install gir1.2-aravis-0.8 and pip install 'persense-stream[gige]' "
            f"({first_line(exc)})"
        ) from None
    return Aravis


def to_rgb(data: bytes | np.ndarray, width: int, height: int, pixel_format: str) -> np.ndarray:
    """One camera buffer -> uint8[height, width, 3] RGB.

    Args:
        data: the payload (at least height * width * channels * bytes per sample bytes; padding is cut).
        pixel_format: a GenICam name from _FORMATS.
    """
    if pixel_format not in _FORMATS:
        raise SourceError(f"unsupported pixel format {pixel_format} (supported: {', '.join(_FORMATS)})")
    channels, sample_bytes, code = _FORMATS[pixel_format]
    dtype = np.uint16 if sample_bytes == 2 else np.uint8
    count = width * height * channels
    flat = np.frombuffer(data, dtype=dtype, count=count) if len(data) >= count * sample_bytes else None
    if flat is None:
        raise SourceError(f"short {pixel_format} buffer: {len(data)} bytes for {width}x{height}")
    image = flat.reshape((height, width, channels) if channels > 1 else (height, width))
    if dtype == np.uint16:
        # Mono16 fills all 16 bits: keep the top byte. (GenICam's Mono10/Mono12 are LSB-aligned in their
        # 16-bit containers and would need >> 2 / >> 4; they are not listed, so open() refuses them.)
        image = (image >> 8).astype(np.uint8)
    return cv2.cvtColor(image, code) if code is not None else image.copy()


class AravisSource:
    """A GigE Vision (or USB3 Vision) camera through Aravis.

    Args:
        name: the camera's device id, serial number, model or IP address as Aravis lists it; None or "" for
            the first camera found.
        camera_id: stamped on every frame.
        pixel_format: GenICam pixel format to request (e.g. "RGB8", "BayerRG8"); None keeps the camera's.
        width, height: region of interest from the sensor's top-left; None keeps the camera's.
        fps: acquisition frame rate; None keeps the camera's.
        n_buffers: buffers queued to the stream (more rides out jitter, costs memory).
        packet_size: GVSP packet size in bytes (jumbo frames need the NIC's MTU); None lets Aravis negotiate.
    """

    live = True

    def __init__(self, name: str | None, camera_id: str, *, pixel_format: str | None = None,
                 width: int | None = None, height: int | None = None, fps: float | None = None,
                 n_buffers: int = 8, packet_size: int | None = None):
        if pixel_format and pixel_format not in _FORMATS:
            raise UserError(f"GigE pixel_format {pixel_format} is not supported (supported: {', '.join(_FORMATS)})")
        self.name = name or None
        self.camera_id = camera_id
        self.pixel_format = pixel_format
        self.width, self.height, self.fps = width, height, fps
        self.n_buffers = n_buffers
        self.packet_size = packet_size
        self._aravis = load_aravis()
        self._camera: Any = None
        self._stream: Any = None
        self._format = ""
        self._index = 0
        self.incomplete = 0  # buffers that arrived with missing packets (dropped)

    @property
    def frame_period(self) -> float | None:
        """Seconds between frames at the requested rate (None: the camera's own, unknown here)."""
        return 1.0 / self.fps if self.fps and self.fps > 0 else None

    @property
    def label(self) -> str:
        return f"GigE camera {self.name or '(first found)'}"

    def _address(self) -> str | None:
        """The camera's IP address from discovery: opening by address makes Aravis pick the interface that
        routes to it (the interface the discovery answer came back on may not be, e.g. for a camera on lo)."""
        arv = self._aravis
        arv.update_device_list()
        for i in range(arv.get_n_devices()):
            keys = {arv.get_device_id(i), arv.get_device_serial_nbr(i), arv.get_device_model(i),
                    arv.get_device_physical_id(i), arv.get_device_address(i)}
            if self.name is None or self.name in keys:
                return arv.get_device_address(i) or arv.get_device_id(i)
        return None

    def open(self) -> None:
        arv = self._aravis
        target = self._address()
        if target is None and self.name is None:
            raise SourceError("no GigE Vision camera found")
        try:
            # Not listed (another subnet, discovery blocked): let Aravis try the name itself.
            self._camera = arv.Camera.new(target or self.name)
            self._configure()
            self._format = self._camera.get_pixel_format_as_string() or ""
            if self._format not in _FORMATS:
                # Every read would fail the same way: a configuration error, not a reason to reconnect.
                raise UserError(f"{self.label} sends pixel format {self._format or '(unknown)'}, which is not "
                                f"supported; set the pixel_format option to one of {', '.join(_FORMATS)}")
            payload = self._camera.get_payload()
            self._stream = self._camera.create_stream(None, None)
            if self._stream is None:
                raise SourceError(f"{self.label}: cannot create a stream")
            for _ in range(self.n_buffers):
                self._stream.push_buffer(arv.Buffer.new_allocate(payload))
            self._camera.start_acquisition()
        except (SourceError, UserError):
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - GLib.Error and friends: the camera is unreachable or busy
            self.close()
            raise SourceError(f"cannot open {self.label}: {first_line(exc)}") from None
        self._index = 0
        log.debug("opened %s (%s, payload %d bytes)", self.label, self._format, payload)

    def _configure(self) -> None:
        cam = self._camera
        if self.pixel_format:
            cam.set_pixel_format_from_string(self.pixel_format)
        if self.width or self.height:
            _, _, current_w, current_h = cam.get_region()
            cam.set_region(0, 0, self.width or current_w, self.height or current_h)
        if self.fps:
            cam.set_frame_rate(self.fps)
        if self.packet_size and cam.is_gv_device():
            cam.gv_set_packet_size(self.packet_size)
        cam.set_acquisition_mode(self._aravis.AcquisitionMode.CONTINUOUS)

    def read(self, timeout: float) -> Frame | None:
        if self._stream is None:
            raise SourceError(f"{self.label} is not open")
        buffer = self._stream.timeout_pop_buffer(max(int(timeout * 1e6), 1))
        if buffer is None:
            return None
        try:
            if buffer.get_status() != self._aravis.BufferStatus.SUCCESS:
                self.incomplete += 1
                log.debug("%s: dropped a buffer with status %s", self.label, buffer.get_status().value_nick)
                return None
            image = to_rgb(buffer.get_data(), buffer.get_image_width(), buffer.get_image_height(), self._format)
            stamp_ns = buffer.get_system_timestamp()
        finally:
            # Back to the stream's input queue at once: Aravis refills it from its own thread.
            self._stream.push_buffer(buffer)
        capture_ts = stamp_ns / 1e9 if stamp_ns > 0 else time.time()
        frame = Frame(image=image, index=self._index, capture_ts=capture_ts, camera=self.camera_id)
        self._index += 1
        return frame

    def close(self) -> None:
        """Stop acquisition and drop the stream; for a camera that vanished, Aravis' stop command times out
        after its GVCP retries (about 2 s)."""
        if self._camera is not None and self._stream is not None:
            try:
                self._camera.stop_acquisition()
            except Exception:  # noqa: BLE001 - the camera may be gone; dropping our references frees the stream
                log.debug("%s: stop_acquisition failed", self.label, exc_info=True)
        self._stream = None
        self._camera = None
