"""The control socket: JSON requests answered in a thread of their own.

Every request gets exactly one JSON reply, {"ok": true, ...} or {"ok": false, "error": "..."}; a bad
request (out of bounds, not JSON, unknown command, wrong frames, failing command) costs the sender an
error reply and nothing else. The socket is a ROUTER, which REQ clients see as a REP socket: it keeps no
send/receive state, so a thread that died between a request and its reply can be restarted on the same
socket (`ensure_running`) without the lock-step error a REP socket would be left in.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable

import zmq

from streamer.archive.audit import LOCAL, acting_as
from streamer.errors import UserError, first_line
from streamer.stream.config import ControlConfig
from streamer.stream.publisher import bind_socket
from streamer.stream.requests import parse_request

log = logging.getLogger(__name__)

# handler(request JSON, the binary frames after it) -> reply fields (merged into {"ok": true})
Handler = Callable[[dict, list[bytes]], dict]

# A single frame beyond this multiple of the request limit makes ZeroMQ drop the connection while reading
# the frame's header, before it is buffered; between the limit and this, the sender gets an error reply.
_HARD_LIMIT_FACTOR = 4
# Requests buffered per client connection before ZeroMQ stops reading from it.
_RECEIVE_HWM = 4


class ControlServer:
    """Args:
        handlers: command name -> handler.
        binary_frames: command name -> the number of binary frames it takes (0 where not named).
        socket_options: further options set before the bind (CURVE's, from streamer.stream.security).
        on_request: called with "ok" or "error" after each reply (metrics).
        on_restart: called when `ensure_running` restarts a dead thread (metrics).
    """

    def __init__(
        self,
        context: zmq.Context,
        config: ControlConfig,
        handlers: dict[str, Handler],
        binary_frames: dict[str, int] | None = None,
        socket_options: dict | None = None,
        on_request: Callable[[str], None] = lambda outcome: None,
        on_restart: Callable[[], None] = lambda: None,
    ):
        self.config = config
        self.handlers = handlers
        self.binary_frames = binary_frames or {}
        self._on_request = on_request
        self._on_restart = on_restart
        # MAXMSGSIZE only applies to connections made after it is set: it must precede the bind.
        options = {zmq.MAXMSGSIZE: config.max_request_bytes * _HARD_LIMIT_FACTOR, zmq.RCVHWM: _RECEIVE_HWM,
                   **(socket_options or {})}
        self._sock, self.endpoint = bind_socket(context, zmq.ROUTER, config.endpoint, "control", options)
        self._stop = threading.Event()
        self._thread = self._new_thread()
        self.restarts = 0

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name="control", daemon=True)

    @property
    def socket(self) -> zmq.Socket:
        """The ROUTER socket; for set-up before `start` only."""
        return self._sock

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def ensure_running(self) -> bool:
        """Restart the thread if it died (it should not: every request's failure is caught) -> restarted."""
        if self._stop.is_set() or self._thread.is_alive() or self._thread.ident is None:
            return False
        log.error("control: the thread had ended; restarting it")
        self.restarts += 1
        self._on_restart()
        self._thread = self._new_thread()
        self._thread.start()
        return True

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
                parts = self._sock.recv_multipart(copy=False)
            except zmq.ZMQError as exc:
                log.warning("control: receive failed: %s", exc.strerror)
                continue
            who = _client_name(parts[-1])
            envelope, body = _split_envelope([part.bytes for part in parts])
            with acting_as(who):  # the audit trail names who asked (streamer.archive.audit)
                reply = self.handle(body)
            self._on_request("ok" if reply.get("ok") else "error")
            try:
                self._sock.send_multipart([*envelope, _encode(reply)])
            except zmq.ZMQError as exc:
                log.warning("control: reply failed: %s", exc.strerror)

    def handle(self, frames: list[bytes]) -> dict:
        """One request's frames (after the routing envelope) -> the reply dict. Never raises an Exception."""
        try:
            return self._handle(frames)
        except Exception as exc:  # the checks and handlers are meant to raise UserError only; a bug must not stop us
            log.exception("control: request failed")
            return _error(f"request failed: {type(exc).__name__}: {first_line(str(exc))[:200]}")

    def _handle(self, frames: list[bytes]) -> dict:
        try:
            request, binary = parse_request(frames, self.config.max_request_bytes)
        except UserError as exc:
            return _error(first_line(exc))
        cmd = request["cmd"]
        handler = self.handlers.get(cmd)
        if handler is None:
            return _error(f"unknown cmd {cmd[:64]!r}; known: {', '.join(sorted(self.handlers))}")
        wanted = self.binary_frames.get(cmd, 0)
        if len(binary) != wanted:
            return _error(f"{cmd} takes {wanted} binary frames after the JSON, got {len(binary)}")
        try:
            return {"ok": True, **handler(request, binary)}
        except UserError as exc:
            return _error(first_line(exc))
        except Exception as exc:  # a command's bug must not stop the control thread
            log.exception("control: %s failed", cmd)
            return _error(f"{cmd} failed: {type(exc).__name__}: {first_line(str(exc))[:200]}")


def _client_name(part: zmq.Frame) -> str:
    """The CURVE client's key name (the authenticator's User-Id: streamer.stream.security), or "local" without
    CURVE."""
    try:
        name = part.get("User-Id")
    except zmq.ZMQError:  # no authenticator: no User-Id
        return LOCAL
    return name or LOCAL


def _split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """ROUTER frames -> (the routing envelope to send back, the request). A REQ client's envelope ends with
    an empty delimiter frame; a DEALER that sends none gets its reply after its identity alone."""
    for i, frame in enumerate(frames[1:], start=1):
        if not frame:
            return frames[: i + 1], frames[i + 1:]
    return frames[:1], frames[1:]


def _encode(reply: dict) -> bytes:
    try:
        return json.dumps(reply).encode()
    except (TypeError, ValueError) as exc:  # a handler returned something JSON cannot hold
        log.error("control: unencodable reply: %s", exc)
        return json.dumps(_error("the reply could not be encoded")).encode()


def _error(message: str) -> dict:
    return {"ok": False, "error": message}
