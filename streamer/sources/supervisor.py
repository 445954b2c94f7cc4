"""One supervisor thread per camera: connect, reconnect with backoff, stall and frozen-frame detection.

A supervisor owns its source: it creates it (through a factory, so every reconnect gets a fresh object),
opens it, reads frames and hands them to `on_frame`, and closes it. Failures never leave the thread: a
source that cannot be opened, breaks, stops sending or sends the same image again and again is closed
and reconnected after an exponential backoff with jitter. Only a finite source that ends (SourceEnded)
or a configuration error (UserError) ends the thread. A camera that hangs in a blocking call holds only
its own thread, which is a daemon: stop() always returns.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from typing import Callable

import numpy as np

from streamer.errors import UserError, first_line
from streamer.sources.backoff import Backoff
from streamer.sources.base import Frame, FrameSource, SourceEnded, SourceError, SourceState

log = logging.getLogger(__name__)

_FINAL = (SourceState.ENDED, SourceState.STOPPED)


def image_digest(image: np.ndarray) -> int:
    """A cheap content hash: CRC32 of every second row and column (a quarter of the bytes) and the shape.

    A moving scene changes far more than that; a frozen encoder or a stuck driver repeats bytes exactly.
    """
    return zlib.crc32(np.ascontiguousarray(image[::2, ::2]).data, hash(image.shape) & 0xFFFFFFFF)


class CameraSupervisor:
    """Keeps one camera streaming for as long as the process runs.

    Args:
        camera_id: names the camera in logs and callbacks.
        source_factory: makes a fresh, unopened FrameSource (called once per connection attempt).
        on_frame: receives each frame, from the supervisor's thread; must return quickly.
        on_state: receives (camera_id, state, reason) on every state change, from the supervisor's thread
            (or from stop()'s caller for the final STOPPED).
        read_timeout: seconds one source.read() may wait for a frame.
        stall_timeout: no frame for this long after open or the last frame: STALLED, then reconnect. A live
            source that paces itself slower (its `frame_period`) gets twice its period instead; a file,
            folder or other non-live source is never stalled (its only waits are its own pacing).
        frozen_after: this many identical frames in a row from a live source: STALLED, then reconnect
            (0 turns the check off; file sources are never checked, a still video is legitimate).
        backoff_initial, backoff_max, jitter: reconnect delays (see Backoff).
        rng: random.Random for the jitter (tests pass a seeded one).
        clock: monotonic seconds; tests pass a fake one to drive stall detection.

    Attributes:
        state: the current SourceState (STOPPED before start()).
        reason: why the last state change happened.
        reconnects: connection attempts after the first one.
        frames: frames delivered to on_frame.
        last_frame_monotonic: `clock()` when the last frame arrived, or None.
        resolution: (width, height) of the last frame, or None.
        error: the message of a configuration error that ended the thread, else None.
    """

    def __init__(
        self,
        camera_id: str,
        source_factory: Callable[[], FrameSource],
        on_frame: Callable[[Frame], None],
        on_state: Callable[[str, SourceState, str], None] | None = None,
        *,
        read_timeout: float = 1.0,
        stall_timeout: float = 5.0,
        frozen_after: int = 50,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.camera_id = camera_id
        self._factory = source_factory
        self._on_frame = on_frame
        self._on_state = on_state
        self.read_timeout = read_timeout
        self.stall_timeout = stall_timeout
        self.frozen_after = frozen_after
        self._backoff = Backoff(backoff_initial, backoff_max, jitter, rng)
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.RLock()  # on_state may call stop() from this very thread
        self._thread: threading.Thread | None = None
        self._final = False
        self._last_failure = ""
        self.state = SourceState.STOPPED
        self.reason = "not started"
        self.reconnects = 0
        self.frames = 0
        self.last_frame_monotonic: float | None = None
        self.resolution: tuple[int, int] | None = None
        self.error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera_id}: supervisor already started")
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop without waiting (stop() then waits): many cameras stop in parallel."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait up to `timeout` seconds; always returns."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                # A driver call that ignores its timeout: the daemon thread closes the source when it returns.
                log.warning("camera %s: source still blocked after %.1fs; left to finish in the background",
                            self.camera_id, timeout)
        self._set_state(SourceState.STOPPED, "stopped")

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            if attempt:
                self.reconnects += 1
            attempt += 1
            self._set_state(SourceState.CONNECTING, f"attempt {attempt}")
            source: FrameSource | None = None
            try:
                source = self._factory()
                source.open()
                retry_reason = self._stream(source)
            except UserError as exc:
                self.error = first_line(exc)
                log.error("camera %s: %s", self.camera_id, self.error)
                self._set_state(SourceState.ENDED, f"error: {self.error}")
                retry_reason = None
            except SourceEnded:
                self._set_state(SourceState.ENDED, "source ended")
                retry_reason = None
            except Exception as exc:  # noqa: BLE001 - any driver failure means: close and retry
                retry_reason = f"connect failed: {_describe(exc)}"
            finally:
                if source is not None:
                    _close_quietly(source, self.camera_id)
            if retry_reason is None or self._stop.is_set():
                break
            delay = self._backoff.next()
            self._set_state(SourceState.RECONNECTING, f"{retry_reason}; retry in {delay:.2f}s")
            self._stop.wait(delay)

    def _stream(self, source: FrameSource) -> str | None:
        """Read until the source fails, stalls or ends; -> why to reconnect, or None to finish."""
        live = bool(getattr(source, "live", True))
        stall_limit = stall_limit_for(source, self.stall_timeout)
        last_progress = self._clock()
        last_digest: int | None = None
        repeats = 0
        streaming = False
        while not self._stop.is_set():
            try:
                frame = source.read(self.read_timeout)
            except (SourceEnded, UserError):
                raise
            except Exception as exc:  # noqa: BLE001
                return f"read failed: {_describe(exc)}"
            now = self._clock()
            if frame is None:
                if stall_limit is not None and now - last_progress >= stall_limit:
                    self._set_state(SourceState.STALLED, f"no frame for {now - last_progress:.1f}s")
                    return "stalled"
                continue
            if self._stop.is_set():
                break
            if live and self.frozen_after > 0:
                digest = image_digest(frame.image)
                repeats = repeats + 1 if digest == last_digest else 1
                last_digest = digest
                if repeats >= self.frozen_after:
                    self._set_state(SourceState.STALLED, f"frozen: {repeats} identical frames")
                    return "frozen"
            self._note_resolution(frame)
            if not streaming:
                streaming = True
                self._backoff.reset()
                self._last_failure = ""
                width, height = self.resolution or (0, 0)
                self._set_state(SourceState.STREAMING, f"{width}x{height}")
            self.last_frame_monotonic = now
            self.frames += 1
            try:
                self._on_frame(frame)
            except Exception:  # noqa: BLE001 - a consumer bug must not kill the camera
                log.exception("camera %s: on_frame failed", self.camera_id)
            # A consumer that takes a while (an every-frame file source) is not a stalled camera.
            last_progress = self._clock()
        return None

    def _note_resolution(self, frame: Frame) -> None:
        height, width = frame.image.shape[:2]
        if self.resolution is not None and self.resolution != (width, height):
            log.info("camera %s: resolution changed %dx%d -> %dx%d", self.camera_id, *self.resolution, width, height)
        self.resolution = (width, height)

    # -- state -----------------------------------------------------------------------------------------

    def _set_state(self, state: SourceState, reason: str) -> None:
        with self._lock:
            if self._final or (state == self.state and reason == self.reason):
                return
            self.state = state
            self.reason = reason
            if state in _FINAL:
                self._final = True
            self._log_state(state, reason)
            if self._on_state is not None:
                try:
                    self._on_state(self.camera_id, state, reason)
                except Exception:  # noqa: BLE001
                    log.exception("camera %s: on_state failed", self.camera_id)

    def _log_state(self, state: SourceState, reason: str) -> None:
        # A camera that stays down retries for hours: log each new failure once, the repeats at DEBUG.
        if state == SourceState.RECONNECTING:
            failure = reason.split("; retry in")[0]
            level = logging.WARNING if failure != self._last_failure else logging.DEBUG
            self._last_failure = failure
        elif state == SourceState.CONNECTING and self._last_failure:
            level = logging.DEBUG
        else:
            level = logging.INFO
        log.log(level, "camera %s: %s (%s)", self.camera_id, state.value, reason)


def stall_limit_for(source: FrameSource, stall_timeout: float) -> float | None:
    """Seconds without a frame after which `source` counts as stalled; None: never.

    A non-live source (file, folder) waits only on its own pacing, so a slow rate is not a stall; a live
    one that says how often it delivers (`frame_period`, seconds) gets at least two periods.
    """
    if not bool(getattr(source, "live", True)):
        return None
    period = getattr(source, "frame_period", None) or 0.0
    return max(stall_timeout, 2.0 * float(period))


def _describe(exc: BaseException) -> str:
    text = first_line(str(exc))
    if isinstance(exc, SourceError):
        return text or "source error"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(source: FrameSource, camera_id: str) -> None:
    try:
        source.close()
    except Exception:  # noqa: BLE001 - closing a broken device may fail too; the connection is gone either way
        log.debug("camera %s: close failed", camera_id, exc_info=True)
