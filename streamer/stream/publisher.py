"""The publisher thread: encodes results and sends them on a ZeroMQ XPUB socket, never blocking.

Only this thread touches the socket (ZeroMQ sockets are not thread-safe). Results wait in a bounded
queue; when it is full the result is dropped and counted, so a slow encoder never stalls inference.

A subscriber that reads slowly, or connects and never reads, must never delay or starve the others. ZeroMQ
queues up to `send_hwm` messages per subscriber; a PUB socket then silently drops that subscriber's copies
(until it has caught up) and delivers to the rest. To make those overflows visible, each message is first
offered with XPUB_NODROP, which refuses it at once (EAGAIN) when a matching subscriber has just reached its
mark; the publisher then counts one overflow and sends the same message lossily, so every subscriber with
room still gets it. ZeroMQ takes a full subscriber out of the sending set until it catches up, so this counts
overflows, not each message the subscriber missed (its own seq gaps show those), and it does not say which
subscriber overflowed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from streamer.errors import UserError
from streamer.outputs.fanout import OutputFanout, result_summary
from streamer.sources.base import Frame
from streamer.stream.config import PublishConfig
from streamer.stream.messages import PartOptions, result_message, status_message
from streamer.stream.metrics import StreamMetrics
from streamer.types import SegmentationResult

log = logging.getLogger(__name__)


@dataclass
class _Result:
    frame: Frame
    result: SegmentationResult
    support_id: str


def bind_socket(
    context: zmq.Context, kind: int, endpoint: str, what: str, options: dict[int, int] | None = None
) -> tuple[zmq.Socket, str]:
    """Bind a socket, setting `options` first; -> (socket, the bound endpoint, with the real port when
    asked for port 0 or *)."""
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 500)
    for option, value in (options or {}).items():
        sock.setsockopt(option, value)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise UserError(f"cannot bind the {what} endpoint {endpoint}: {exc.strerror}") from None
    return sock, sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def connect_socket(
    context: zmq.Context, kind: int, endpoint: str, options: dict[int, int] | None = None
) -> tuple[zmq.Socket, str]:
    """Connect a socket (options set first) -> (socket, endpoint); ZeroMQ keeps trying while the peer is away."""
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 500)
    for option, value in (options or {}).items():
        sock.setsockopt(option, value)
    sock.connect(endpoint)
    return sock, endpoint


class Publisher:
    """Owns the XPUB socket and its thread.

    Args:
        status_provider: camera -> status dict, asked every `heartbeat_s` for the heartbeats.
        on_published: called with the camera after each result is sent (from the publisher thread).
        limit: send at most this many results in all (then `limit_reached` is set); None for no limit.
        socket_options: further options set before the bind (CURVE's, from streamer.stream.security).
        fanout: the plant's outputs (streamer.outputs), handed every message this thread sends (never waits).
    """

    def __init__(
        self,
        context: zmq.Context,
        config: PublishConfig,
        metrics: StreamMetrics,
        status_provider: Callable[[], dict[str, dict]],
        on_published: Callable[[str], None] = lambda camera: None,
        limit: int | None = None,
        socket_options: dict | None = None,
        fanout: OutputFanout | None = None,
    ):
        self.config = config
        self.metrics = metrics
        self.options = PartOptions(config.masks, config.overlay_jpeg, config.jpeg_quality, config.label_map_png)
        # Subscribe messages seen so far (the publisher thread counts them; XPUB_VERBOSE passes a second
        # subscriber's subscription to a topic too): how many subscriptions have reached the publisher.
        self.subscriptions = 0
        options = {zmq.SNDHWM: config.send_hwm, zmq.XPUB_NODROP: 1, zmq.XPUB_VERBOSE: 1, **(socket_options or {})}
        if config.connect:
            # A fleet's worker: its forwarder (streamer.fleet.forwarder) binds, and passes subscriptions upstream.
            self._sock, self.endpoint = connect_socket(context, zmq.XPUB, config.endpoint, options)
        else:
            self._sock, self.endpoint = bind_socket(context, zmq.XPUB, config.endpoint, "publish", options)
        self._results: queue.Queue[_Result] = queue.Queue(maxsize=config.queue_size)
        self._status: queue.Queue[tuple[str, dict]] = queue.Queue(maxsize=256)
        self._status_provider = status_provider
        self._on_published = on_published
        self._fanout = fanout
        self._limit = limit
        self.sent = 0
        self.seq: dict[str, int] = {}
        self.limit_reached = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    @property
    def socket(self) -> zmq.Socket:
        """The XPUB socket; for set-up before `start` only (afterwards only the publisher thread touches it)."""
        return self._sock

    # -- called from other threads -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, frame: Frame, result: SegmentationResult, support_id: str, wait: bool = False) -> bool:
        """Queue a result; a full queue drops it (counted), or with `wait` blocks until room or stop."""
        item = _Result(frame, result, support_id)
        while True:
            try:
                self._results.put(item, block=wait, timeout=0.2 if wait else None)
                return True
            except queue.Full:
                if not wait or self._stop.is_set():
                    self.metrics.publish_dropped.labels(frame.camera).inc()
                    return False

    def submit_status(self, camera: str, status: dict) -> None:
        """A state change: sent ahead of any waiting results (a flood beyond 256 waiting is dropped)."""
        try:
            self._status.put_nowait((camera, status))
        except queue.Full:
            log.debug("status queue full; dropped a %s status of camera %s", status.get("event"), camera)

    def submit_message(self, camera: str, parts: list[bytes]) -> None:
        """A built message ([topic, header, ...], e.g. a tally): sent like a status, ahead of waiting results."""
        try:
            self._status.put_nowait((camera, parts))
        except queue.Full:
            log.warning("status queue full; dropped a %s message of camera %s", parts[0].decode(errors="replace"),
                        camera)

    def idle(self) -> bool:
        """No result waiting or being sent."""
        return self._results.unfinished_tasks == 0

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Send what is queued (up to `flush_timeout`), then close the socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(flush_timeout + 1.0)
        if self._thread.is_alive():
            log.warning("publisher thread did not finish in time")
        else:
            self._sock.close()

    # -- the thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        next_heartbeat = time.monotonic()
        flush_deadline = None
        while True:
            self._drain_subscriptions()
            self._send_statuses()
            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + self.config.heartbeat_s
            if self._stop.is_set():
                flush_deadline = flush_deadline or now + 2.0
                if self._results.empty() or now > flush_deadline:
                    break
            try:
                item = self._results.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self._publish(item)
            finally:
                self._results.task_done()
        self._send_statuses()
        while not self._results.empty():  # anything left after the flush deadline is dropped, and counted
            self.metrics.publish_dropped.labels(self._results.get_nowait().frame.camera).inc()

    def _publish(self, item: _Result) -> None:
        camera = item.frame.camera
        if self.limit_reached.is_set():
            return
        start = time.perf_counter()
        seq = self.seq.get(camera, 0)
        try:
            parts = result_message(item.frame, item.result, seq, item.support_id, self.options)
        except Exception:
            log.exception("camera %s: encoding result %d failed", camera, item.frame.index)
            self.metrics.publish_dropped.labels(camera).inc()
            return
        if not self._send(parts, camera):
            self.metrics.publish_dropped.labels(camera).inc()
        if self._fanout is not None:
            self._fanout(camera, "result", result_summary(item.frame, item.result, seq, item.support_id))
        # The seq is spent even when the send is refused: the gap tells subscribers a result is missing.
        self.seq[camera] = seq + 1
        self.metrics.stage.labels(camera, "publish").observe(time.perf_counter() - start)
        self.metrics.end_to_end.labels(camera).observe(max(time.time() - item.frame.capture_ts, 0.0))
        self.metrics.objects.labels(camera).set(item.result.count)
        self.metrics.match_quality.labels(camera).set(item.result.match_quality)
        if item.result.products or item.result.negatives:
            self.metrics.observe_products(camera, item.result)
        self.sent += 1
        self._on_published(camera)
        if self._limit is not None and self.sent >= self._limit:
            self.limit_reached.set()

    def _send(self, parts: list[bytes], camera: str | None = None) -> bool:
        """Send to every subscriber with room -> whether it went out. A refusal because a subscriber reached
        its high-water mark is counted as an overflow of `camera` (results only) and the message sent lossily."""
        try:
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            pass
        except zmq.ZMQError as exc:
            log.warning("publish failed: %s", exc.strerror)
            return False
        if camera is not None:
            self.metrics.subscriber_overflows.labels(camera).inc()
        self._sock.setsockopt(zmq.XPUB_NODROP, 0)
        try:
            # Lossy: a full subscriber's copy is dropped, the others' are queued; this never refuses.
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as exc:
            log.warning("publish failed: %s", exc.strerror)
            return False
        finally:
            self._sock.setsockopt(zmq.XPUB_NODROP, 1)

    def _drain_subscriptions(self) -> None:
        # An XPUB socket hands its subscribers' (un)subscribe messages to the application; unread they
        # would pile up for as long as the processor runs. ZeroMQ keeps the subscriptions itself.
        while True:
            try:
                message = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                log.debug("reading subscriptions failed: %s", exc.strerror)
                return
            if message[:1] == b"\x01":
                self.subscriptions += 1

    def _send_statuses(self) -> None:
        while True:
            try:
                camera, status = self._status.get_nowait()
            except queue.Empty:
                return
            if isinstance(status, list):
                self._send(status)
                if self._fanout is not None:
                    self._fanout.offer_parts(camera, status)
            else:
                self._send(status_message(camera, status))
                if self._fanout is not None:
                    self._fanout(camera, "status", status)

    def _heartbeat(self) -> None:
        try:
            statuses = self._status_provider()
        except Exception:
            log.exception("status provider failed")
            return
        for camera, status in statuses.items():
            beat = {"event": "heartbeat", **status}
            self._send(status_message(camera, beat))
            if self._fanout is not None:
                self._fanout(camera, "status", beat)
