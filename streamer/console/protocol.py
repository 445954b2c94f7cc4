"""uvicorn's h11 protocol, bounded in time and in connections, so that no client can hold the HTTP port.

What uvicorn alone allowed (issue 24): a client that sends a request head with a large Content-Length and a
byte of body got its answer (401) and kept the connection for ever (uvicorn reads on, and its keep-alive timer
is cancelled by any byte); 255 of them filled `limit_concurrency`, which counts connections, and then every
request, probes included, got 503. Here:

- A request must arrive in time: its line and headers within `head_timeout_s` of its first byte (or of the
  connection), the whole request, body included, within `request_timeout_s`; else the connection is closed.
  After each response uvicorn's keep-alive timer (`keep_alive_s`) closes an idle connection.
- A response sent before its request's body was read (a refusal: 401, 403, 400, 413) ends the connection:
  the rest of the body is discarded unread for at most `_LINGER_S` (so the client reads the answer rather
  than a reset), then the connection is closed.
- At most `max_connections` are open: a new one beyond closes a connection that is not in the middle of a
  request (one being drained first, else the one idle or sending its head the longest), so a flood of held
  connections gives way to new clients, probes included; only when every connection is busy with a request
  is the new one answered 503 at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_LINGER_S = 1.0
_refused = {"last": -10.0, "count": 0}  # new connections answered 503, for a note every 10 s
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
         b"Content-Length: 43\r\n\r\nevery connection is busy; try again shortly")


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 256
    head_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    keep_alive_s: float = 5.0

    @classmethod
    def of(cls, options) -> "HttpLimits":
        """From a ConsoleConfig (None: the defaults)."""
        if options is None:
            return cls()
        return cls(options.max_connections, options.head_timeout_s, options.request_timeout_s, options.keep_alive_s)


def guarded_protocol(limits: HttpLimits) -> type:
    """The protocol class for one server: GuardedH11 with `limits`."""
    return type("GuardedH11", (GuardedH11,), {"limits": limits})


class GuardedH11(H11Protocol):
    limits = HttpLimits()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._draining = False
        self._timers: list = []
        self._clock = 0  # which request the timers belong to
        self._in_request = True  # a request is being received (the first from the connection's start)
        self._idle_since = time.monotonic()
        self._start_clock()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    # -- deadlines ------------------------------------------------------------------------------------
    def _start_clock(self) -> None:
        self._stop_clock()
        self._clock += 1
        self._in_request = True
        self._timers = [self.loop.call_later(self.limits.head_timeout_s, self._overdue, self._clock, True),
                        self.loop.call_later(self.limits.request_timeout_s, self._overdue, self._clock, False)]

    def _stop_clock(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def _overdue(self, clock: int, head: bool) -> None:
        if clock != self._clock or self.transport.is_closing():
            return
        if head and self.conn.their_state is not h11.IDLE:
            return  # the head arrived; the whole request's own deadline still runs
        if not head and not self._in_request:
            return
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # the rest of a body nobody will read: dropped unparsed
        if not self._in_request:  # the first byte of the next request on a kept-alive connection
            self._start_clock()
        super().data_received(data)
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE) and self._in_request:
            self._in_request = False  # all of it arrived in time
            self._stop_clock()

    # -- responses ------------------------------------------------------------------------------------
    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        unread = self.conn.their_state is h11.SEND_BODY
        super().on_response_complete()
        if unread and not self.transport.is_closing():
            # Answered before its body was read: the connection ends here. The client reads the answer and
            # an end of stream, not a reset, while what it still sends is dropped for a moment.
            self._draining = True
            self._in_request = False
            self._stop_clock()
            self._unset_keepalive_if_required()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self._timers = [self.loop.call_later(_LINGER_S, self.transport.close)]

    def eof_received(self) -> bool | None:
        if self._draining:
            self.transport.close()
        return super().eof_received()

    def connection_lost(self, exc) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    # -- room -----------------------------------------------------------------------------------------
    def _waiting(self) -> bool:
        """Not in the middle of a request the app is serving: idle, sending a head, or being drained."""
        return self._draining or self.cycle is None or self.cycle.response_complete

    def _make_room(self) -> None:
        now = time.monotonic()
        waiting = [c for c in self.connections if c is not self and isinstance(c, GuardedH11) and c._waiting()
                   and not c.transport.is_closing()]
        if waiting:
            # Those already answered and being drained go first, then the longest waiting: a client that has
            # just connected (a probe) keeps its chance to send its request. (Sparing young connections
            # altogether was measured: under a reconnecting flood it refused more probes, not fewer.)
            oldest = min(waiting, key=lambda c: (not c._draining, c._idle_since))
            oldest.transport.close()
            return
        if now - _refused["last"] >= 10.0:
            log.warning("http: %d connections are open and none can give way; new ones are answered 503 (%d since "
                        "the last note)", self.limits.max_connections, _refused["count"] + 1)
            _refused["last"], _refused["count"] = now, 0
        else:
            _refused["count"] += 1
        self.transport.write(_BUSY)
        self.transport.close()
