"""The fleet's one place to subscribe: an XSUB/XPUB forwarder (ZeroMQ's proxy pattern, zmq.proxy_steerable).

Workers' publishers connect to the XSUB side (`ingest`); subscribers connect to the XPUB side (`publish`) and see
every camera's topics. Subscriptions travel the other way, from the XPUB side to every connected worker, so a
worker sends only what someone has subscribed to. Messages pass through unchanged: topics, headers, parts and each
camera's seq are the workers' own (docs/stream-protocol.md). With CURVE, both sockets are CURVE servers.
"""

from __future__ import annotations

import logging
import threading
import uuid

import zmq

from streamer.stream.publisher import bind_socket

log = logging.getLogger(__name__)

_TERMINATE = b"TERMINATE"


class Forwarder:
    """Args:
        publish: the XPUB endpoint subscribers connect to.
        ingest: the XSUB endpoint workers connect to.
        hwm: each side's high-water mark, in messages.
        socket_options: options set on both sockets before they bind (CURVE's, streamer.stream.security).
    """

    def __init__(self, context: zmq.Context, publish: str, ingest: str, hwm: int = 1000,
                 socket_options: dict | None = None):
        self._context = context
        options = dict(socket_options or {})
        self._xsub, self.ingest = bind_socket(context, zmq.XSUB, ingest, "fleet ingest",
                                              {zmq.RCVHWM: hwm, **options})
        try:
            self._xpub, self.publish = bind_socket(context, zmq.XPUB, publish, "fleet publish",
                                                   {zmq.SNDHWM: hwm, **options})
        except BaseException:
            self._xsub.close(0)
            raise
        self._control_address = f"inproc://fleet-forwarder-{uuid.uuid4().hex}"
        self._control = context.socket(zmq.PAIR)
        self._control.bind(self._control_address)
        self._thread = threading.Thread(target=self._run, name="fleet-forwarder", daemon=True)

    @property
    def sockets(self) -> dict[str, zmq.Socket]:
        """The bound sockets by name, for watching refused handshakes (before `start` only)."""
        return {"ingest": self._xsub, "publish": self._xpub}

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        # The control socket's peer is made on this thread: a ZeroMQ socket is used by one thread only.
        control = self._context.socket(zmq.PAIR)
        control.connect(self._control_address)
        try:
            zmq.proxy_steerable(self._xsub, self._xpub, None, control)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                log.error("fleet forwarder stopped: %s", exc.strerror)
        finally:
            control.close(0)
            self._xsub.close(0)
            self._xpub.close(0)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._control.send(_TERMINATE)
            self._thread.join(5.0)
        elif self._thread.ident is None:
            self._xsub.close(0)
            self._xpub.close(0)
        self._control.close(0)
