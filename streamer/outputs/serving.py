"""What the two servers (OPC UA, Modbus) share: an asyncio loop on a thread of its own, and the board of each
camera's figures that the publisher's thread folds messages into and the server's loop reads."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Awaitable, Callable

from streamer.errors import UserError, first_line
from streamer.outputs.figures import CameraFigures, fold

log = logging.getLogger(__name__)

_START_S = 30.0  # a server's start (loading certificates, binding): far more than it takes


class LoopThread:
    """An event loop on a daemon thread: a server's sockets live there, so no client can hold up the caller."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call(self, make: Callable[[], Awaitable], timeout: float = _START_S):
        """Run make() on the loop and wait for its result (its exception is raised here)."""
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise UserError(f"{self._thread.name}: no answer within {timeout:g} s") from None

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()

    def alive(self) -> bool:
        return self._thread.is_alive()


class FiguresBoard:
    """camera -> CameraFigures, folded on the publisher's thread, read on a server's loop (thread-safe).

    A message that cannot be folded (a reject without its fields) is counted as unreadable and skipped."""

    def __init__(self, cameras: list[str], on_unreadable: Callable[[], None], clock=time.time):
        self._figures = {camera: CameraFigures() for camera in cameras}
        self._lock = threading.Lock()
        self._on_unreadable, self._clock = on_unreadable, clock

    def fold(self, camera: str, kind: str, payload: dict) -> CameraFigures | None:
        """-> the camera's new figures, None where the message was skipped (not this board's camera, unreadable)."""
        with self._lock:
            figures = self._figures.get(camera)
            if figures is None:
                return None
            try:
                figures = self._figures[camera] = fold(figures, kind, payload, self._clock())
            except (KeyError, TypeError, ValueError) as exc:
                log.debug("camera %s: a %s message the outputs cannot read: %s", camera, kind, first_line(exc))
                self._on_unreadable()
                return None
            return figures

    def snapshot(self) -> dict[str, CameraFigures]:
        with self._lock:
            return dict(self._figures)


def check_port_free(what: str, host: str, port: int) -> None:
    """UserError where (host, port) cannot be bound now (in use, or no such address): the clear line at start."""
    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio binds servers
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"{what}: cannot serve on {host}:{port}: {exc.strerror or exc}") from None
