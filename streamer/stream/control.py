"""The control socket: a ZeroMQ REP server answering JSON requests in its own thread.

Every request gets exactly one JSON reply, {"ok": true, ...} or {"ok": false, "error": "..."}; a bad
request (not JSON, too large, unknown command, failing command) costs the sender an error reply and
nothing else.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable

import zmq

from streamer.errors import UserError, first_line
from streamer.stream.config import ControlConfig
from streamer.stream.publisher import bind_socket

log = logging.getLogger(__name__)

# handler(request JSON, the binary frames after it) -> reply fields (merged into {"ok": true})
Handler = Callable[[dict, list[bytes]], dict]

# Frames beyond this multiple of the request limit make ZeroMQ drop the connection before they are
# buffered; between the limit and this, the sender gets an error reply.
_HARD_LIMIT_FACTOR = 4


class ControlServer:
    def __init__(self, context: zmq.Context, config: ControlConfig, handlers: dict[str, Handler]):
        self.config = config
        self.handlers = handlers
        self._sock, self.endpoint = bind_socket(context, zmq.REP, config.endpoint, "control")
        self._sock.setsockopt(zmq.MAXMSGSIZE, config.max_request_bytes * _HARD_LIMIT_FACTOR)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        if not self._thread.is_alive():
            self._sock.close()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            try:
                frames = self._sock.recv_multipart()
            except zmq.ZMQError as exc:
                log.warning("control: receive failed: %s", exc.strerror)
                continue
            reply = self.handle(frames)
            try:
                self._sock.send(json.dumps(reply).encode())
            except zmq.ZMQError as exc:
                log.warning("control: reply failed: %s", exc.strerror)

    def handle(self, frames: list[bytes]) -> dict:
        """One request's frames -> the reply dict. Never raises."""
        size = sum(len(f) for f in frames)
        if size > self.config.max_request_bytes:
            return _error(f"request of {size} bytes exceeds the limit of {self.config.max_request_bytes}")
        try:
            request = json.loads(frames[0])
        except (ValueError, UnicodeDecodeError):
            return _error('the first frame must be a JSON object such as {"cmd": "status"}')
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return _error('the request must be a JSON object with a "cmd" string, e.g. {"cmd": "status"}')
        cmd = request["cmd"]
        handler = self.handlers.get(cmd)
        if handler is None:
            return _error(f"unknown cmd {cmd[:64]!r}; known: {', '.join(sorted(self.handlers))}")
        try:
            return {"ok": True, **handler(request, frames[1:])}
        except UserError as exc:
            return _error(first_line(exc))
        except Exception as exc:  # a command's bug must not stop the control thread
            log.exception("control: %s failed", cmd)
            return _error(f"{cmd} failed: {type(exc).__name__}: {first_line(str(exc))}")


def _error(message: str) -> dict:
    return {"ok": False, "error": message}
