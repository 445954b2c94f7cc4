"""The stream processor: cameras -> newest-frame slots -> inference -> publisher, plus control and metrics.

Threads: one supervisor per camera (capture), one inference thread, one publisher thread, the control
thread and the HTTP server (metrics, probes and the operator console, streamer.console). They meet only at
bounded buffers, so none waits on another.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np
import zmq

from engines.interfaces import EngineSet
from streamer.config import Config
from streamer.console.live import LiveView, ResultTee
from streamer.engine_factory import build_label_extractor
from streamer.errors import UserError, first_line
from streamer.gates import build_gate
from streamer.persense.pipeline import PerSense
from streamer.sources.base import SourceState
from streamer.stream.ahead import encode_ahead_enabled
from streamer.stream.cameras import default_source_factory
from streamer.stream.control import ControlServer
from streamer.stream.metrics import SourceSnapshot, StreamMetrics
from streamer.stream.publisher import Publisher
from streamer.stream.security import Authentication, start_authentication
from streamer.stream.slots import FrameSlots
from streamer.stream.products import CameraProducts
from streamer.stream.support import PrototypeCache, support_from_bytes
from streamer.stream.support_history import SupportHistory, pack
from streamer.stream.worker import InferenceWorker

log = logging.getLogger(__name__)

_FINISHED = (SourceState.ENDED, SourceState.STOPPED)
_STOP_CAMERAS_S = 2.0  # all cameras together, not each


class StreamProcessor:
    """Runs one configuration until stopped.

    Args:
        config: the whole configuration (config.stream says what to open, bind and serve).
        engines: the models.
        support: (uint8[H, W, 3] RGB image, bool[H, W] mask), the one-shot support set of every camera without
            one of its own.
        camera_supports: camera id -> its own (image, mask): a product per camera (streamer.stream.products).
        publish_socket_options: the publisher's socket options instead of the CURVE server's (a fleet's worker,
            whose publisher connects to the forwarder as a CURVE client).
        source_factory: (SourceConfig) -> a zero-argument callable opening a FrameSource; default open_source.
        supervisor_factory: the CameraSupervisor class or a stand-in with its signature.
    """

    def __init__(
        self,
        config: Config,
        engines: EngineSet,
        support: tuple[np.ndarray, np.ndarray],
        source_factory: Callable | None = None,
        supervisor_factory: Callable | None = None,
        camera_supports: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        publish_socket_options: dict | None = None,
    ):
        self.config = config
        self.stream = config.stream
        self.cameras = [s.camera_id for s in self.stream.sources]
        self.metrics = StreamMetrics(self.cameras)
        self.cache = PrototypeCache(self.stream.resolved_cache_dir())
        # One gate per distinct gate configuration: cameras with the same detector share its loaded model too.
        built: dict[str, object] = {}
        gates = {}
        for source in self.stream.sources:
            gate_config = source.gate or config.gate
            key = gate_config.model_dump_json()
            gates[source.camera_id] = built[key] = built.get(key) or build_gate(gate_config)
        labels = {s.camera_id: (s.support.label if s.support and s.support.label else config.support.label)
                  for s in self.stream.sources}
        self.products = CameraProducts(engines, config.pipeline, gates, self.cache,
                                       labeler=build_label_extractor(config.engines.cle), labels=labels,
                                       history_bytes=self.stream.console.support_history_bytes)
        self._initial_supports = {camera: (camera_supports or {}).get(camera, support) for camera in self.cameras}
        self._source_factory = source_factory or default_source_factory
        self._supervisor_factory = supervisor_factory
        self._publish_socket_options = publish_socket_options
        # Asked for; granted per connection to non-live sources only (see _opened).
        self._every_frame = {s.camera_id for s in self.stream.sources if s.every_frame}
        self._warned_live_every_frame: set[str] = set()
        self.slots = FrameSlots(self.cameras, on_drop=self.metrics.frame)
        self.supervisors: dict[str, object] = {}
        self.started_at = time.monotonic()
        self._context: zmq.Context | None = None
        self.publisher: Publisher | None = None
        self.control: ControlServer | None = None
        self.http = None  # streamer.console.server.HttpServer of the metrics port: metrics, probes, the console
        self.console_http = None  # the console's own port's server, where stream.console.port gives one
        self.http_token: str | None = None  # the console's token in force (None: none needed)
        self.http_token_generated = False  # True: made up at start, for the operator to be shown once
        self.live = LiveView(self.cameras, max_viewers=self.stream.console.max_viewers)
        self.worker: InferenceWorker | None = None
        self.auth: Authentication | None = None
        self.tally = None  # streamer.stream.tally_sink.TallySink where stream.tally is active
        self._stopped = False

    @property
    def persense(self) -> PerSense:
        """The first camera's pipeline: its engines pick objects for the console."""
        return self.products.pipeline(self.cameras[0])

    @property
    def supports(self) -> SupportHistory:
        """The first camera's supports, newest last (the console's Undo)."""
        return self.products.histories[self.cameras[0]]

    def supports_of(self, camera: str | None) -> SupportHistory:
        """`camera`'s supports, newest last (None: the first camera's)."""
        return self.supports if camera is None else self.products.histories[self.products.check_camera(camera)]

    # -- life -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Compute the support, bind the sockets and the metrics port, start every thread and camera."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for camera, (image, mask) in self._initial_supports.items():
            support = self.products.apply(camera, image, mask)
            self.products.histories[camera].push(image, mask, support.support_id)
            log.info("camera %s: support %s ready (%s)", camera, support.support_id, self.products.engines.name)
        self._context = zmq.Context()
        self.auth = start_authentication(self._context, self.stream,
                                         lambda socket: self.metrics.auth_denied.labels(socket).inc())
        curve_options = self.auth.curve.socket_options() if self.auth else None
        self.publisher = Publisher(self._context, self.stream.publish, self.metrics, self.camera_statuses,
                                   limit=self.stream.max_frames,
                                   socket_options=self._publish_socket_options or curve_options)
        if self.stream.control.endpoint:
            handlers = {"status": self._cmd_status, "pause": self._cmd_pause, "resume": self._cmd_resume,
                        "set_support": self._cmd_set_support}
            self.control = ControlServer(
                self._context, self.stream.control, handlers, binary_frames={"set_support": 2},
                on_request=lambda outcome: self.metrics.control_requests.labels(outcome).inc(),
                on_restart=self.metrics.control_restarts.inc, socket_options=curve_options,
            )
        if self.auth is not None:
            publish = None if self.stream.publish.connect else self.publisher.socket
            self.auth.watch({"publish": publish, "control": self.control and self.control.socket})
        self.http, self.console_http = self._http_servers()
        self.metrics.watch_sources(self._source_snapshots)
        self.worker = InferenceWorker(self.products.pipeline, self.slots, self._result_sink(), self.metrics,
                                      encode_ahead=encode_ahead_enabled(self.stream.encode_ahead,
                                                                       self.products.engines.encoder))
        for part in (self.publisher, self.worker, self.control, self.http, self.console_http):
            if part is not None:
                part.start()
        for source in self.stream.sources:
            self.supervisors[source.camera_id] = self._make_supervisor(source)
        for supervisor in self.supervisors.values():
            supervisor.start()

    def _result_sink(self):
        """Publisher and live view; in front of them the tally (tracks, counting lines, items) where configured."""
        sink = ResultTee(self.publisher, self.live)
        if not self.stream.tally.active:
            return sink
        from streamer.stream.tally_sink import TallySink

        self.tally = TallySink(sink, self.stream.tally, self.cameras, self.metrics, self.publisher.submit_message)
        for camera, (_, mask) in self._initial_supports.items():
            self.tally.set_support(mask, camera)
        return self.tally

    def _http_servers(self):
        """-> (the metrics port's server, the console's own port's server), each None where it is off.

        The metrics port serves /metrics, /healthz, /readyz and the console, unless the console has a port of its own.
        """
        from streamer.console.app import build_app
        from streamer.console.auth import resolve_token
        from streamer.console.server import HttpServer

        options, metrics = self.stream.console, self.stream.metrics
        own_port = options.enabled and options.port is not None
        console_host = (options.host or metrics.host) if own_port else metrics.host
        if options.enabled or options.metrics_need_token:
            self.http_token, self.http_token_generated = resolve_token(options.token, console_host)

        def server(host: str, port: int, with_console: bool) -> HttpServer:
            app = build_app(self.metrics.exposed, self.health, self.readiness, console=self if with_console else None,
                            options=options, token=self.http_token)
            return HttpServer(app, host, port, options=options)

        main = None if metrics.port is None else server(metrics.host, metrics.port, options.enabled and not own_port)
        try:
            return main, server(console_host, options.port, True) if own_port else None
        except BaseException:
            if main is not None:
                main.stop()
            raise

    def _make_supervisor(self, source):
        factory = self._supervisor_factory
        if factory is None:
            from streamer.sources.supervisor import CameraSupervisor as factory
        timing = self.stream.supervisor
        make = self._source_factory(source)
        camera = source.camera_id

        def make_and_note():
            made = make()
            self._opened(camera, made)
            return made

        return factory(
            camera,
            make_and_note,
            self.slots.put,
            self._on_state,
            read_timeout=timing.read_timeout,
            stall_timeout=timing.stall_timeout,
            frozen_after=timing.frozen_after,
            backoff_initial=timing.backoff_initial,
            backoff_max=timing.backoff_max,
            jitter=timing.jitter,
        )

    def _opened(self, camera: str, source) -> None:
        """A fresh source of `camera` (its supervisor's thread, before it is opened): every_frame applies
        to non-live sources only; a live camera that had to wait for inference would fall ever further behind."""
        live = bool(getattr(source, "live", True))
        wanted = camera in self._every_frame
        if wanted and live and camera not in self._warned_live_every_frame:
            self._warned_live_every_frame.add(camera)
            log.warning("camera %s: every_frame applies to files and folders only; a live camera keeps the "
                        "newest frame", camera)
        self.slots.set_every_frame(camera, wanted and not live)
        corrupt = getattr(source, "corrupt", None)
        if corrupt is not None:
            corrupt.on_count = lambda n: self.metrics.frames.labels(camera, "corrupt").inc(n)

    def wait(self, stop: threading.Event, poll_s: float = 0.1) -> str:
        """Block until `stop` is set, --max-frames results are out, or every finite source is done -> why.

        Raises UserError (the first camera's error) when every camera ended on a configuration error.
        """
        while True:
            if stop.wait(poll_s):
                return "signal"
            if self.control is not None:
                self.control.ensure_running()
            if self.publisher is not None and self.publisher.limit_reached.is_set():
                return "max-frames"
            failure = self._all_cameras_failed()
            if failure:
                raise UserError(failure)
            if self.finished():
                return "sources ended"
            if self.worker is not None and not self.worker.alive():
                raise UserError("the inference thread ended unexpectedly (see the log)")

    def _all_cameras_failed(self) -> str | None:
        """One line naming the first camera's configuration error when every camera ended on one, else None."""
        sups = list(self.supervisors.items())
        if not sups or any(s.state not in _FINISHED or not getattr(s, "error", None) for _, s in sups):
            return None
        camera, first = sups[0]
        others = f" (all {len(sups)} cameras failed)" if len(sups) > 1 else ""
        return f"camera {camera}: {first_line(first.error)}{others}"

    def finished(self) -> bool:
        """Every source ended and everything it delivered is published."""
        if not self.supervisors or any(s.state not in _FINISHED for s in self.supervisors.values()):
            return False
        # Order matters: the slots go idle only after the result reached the publisher's queue.
        return self.slots.idle() and (self.publisher is None or self.publisher.idle())

    def stop(self) -> None:
        """Stop cameras, finish the frame in flight, flush the publisher, close sockets. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        supervisors = list(self.supervisors.items())
        # Every camera is told first, and the slots closed (waking an every-frame producer waiting for
        # room), so the cameras wind down in parallel within one deadline rather than one after another.
        for _, supervisor in supervisors:
            request_stop = getattr(supervisor, "request_stop", None)
            if request_stop is not None:
                request_stop()
        dropped = self.slots.close()
        if dropped:
            log.info("dropped %d waiting frame(s) at shutdown", dropped)
        deadline = time.monotonic() + _STOP_CAMERAS_S
        for camera, supervisor in supervisors:
            try:
                supervisor.stop(max(deadline - time.monotonic(), 0.0))
            except Exception:
                log.exception("camera %s: stopping its supervisor failed", camera)
        for part in (self.worker, self.publisher, self.control, self.http, self.console_http, self.auth):
            if part is not None:
                part.stop()
        if self._context is not None:
            # destroy, not term: a socket a stuck thread still holds must not keep the process alive.
            self._context.destroy()

    # -- state ---------------------------------------------------------------------------------------
    def _on_state(self, camera: str, state: SourceState, reason: str = "") -> None:
        # Called from the camera's thread while its supervisor holds its lock: only queue the message.
        if self.publisher is not None:
            status = self._camera_status(camera)
            status["state"] = getattr(state, "value", str(state))
            self.publisher.submit_status(camera, {"event": "state", "reason": reason, **status})

    def _source_snapshots(self) -> list[SourceSnapshot]:
        now = time.monotonic()
        snaps = []
        for camera, sup in list(self.supervisors.items()):
            last = getattr(sup, "last_frame_monotonic", None)
            snaps.append(SourceSnapshot(camera, sup.state == SourceState.STREAMING, int(sup.reconnects),
                                        None if last is None else max(now - last, 0.0)))
        return snaps

    def _camera_status(self, camera: str) -> dict:
        sup = self.supervisors.get(camera)
        worker = self.worker
        last = getattr(sup, "last_frame_monotonic", None) if sup else None
        return {
            "state": getattr(sup.state, "value", str(sup.state)) if sup else "starting",
            "reconnects": int(sup.reconnects) if sup else 0,
            "last_frame_age_s": None if last is None else round(time.monotonic() - last, 3),
            "processed": worker.processed.get(camera, 0) if worker else 0,
            "failed": worker.failed.get(camera, 0) if worker else 0,
            "published": self.publisher.seq.get(camera, 0) if self.publisher else 0,
            "last_count": worker.last_count.get(camera) if worker else None,
            "paused": bool(worker and worker.paused.is_set()),
            "support_id": self.products.support_id(camera),
            "label": self.products.label(camera),
        }

    def camera_statuses(self) -> dict[str, dict]:
        return {camera: self._camera_status(camera) for camera in self.cameras}

    def health(self) -> tuple[bool, dict]:
        threads = {"inference": self.worker, "publisher": self.publisher, "control": self.control, "http": self.http,
                   "console": self.console_http}
        alive = {name: part.alive() for name, part in threads.items() if part is not None and hasattr(part, "alive")}
        return all(alive.values()), {"threads": alive}

    def readiness(self) -> tuple[bool, dict]:
        alive, _ = self.health()
        states = {c: getattr(s.state, "value", str(s.state)) for c, s in self.supervisors.items()}
        streaming = any(s.state == SourceState.STREAMING for s in self.supervisors.values())
        support = all(self.products.support_id(camera) is not None for camera in self.cameras)
        return alive and support and streaming, {"support": support, "cameras": states}

    # -- control commands (control thread) -----------------------------------------------------------
    def _cmd_status(self, request: dict, frames: list[bytes]) -> dict:
        return {
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "paused": self.is_paused(),
            "support_id": self.products.support_id(self.cameras[0]),  # the first camera's; each camera's below
            "label": self.products.label(self.cameras[0]),
            "engines": self.products.engines.name,
            "publish": self.publisher.endpoint if self.publisher else None,
            "metrics": self.http.url if self.http else None,
            "published": self.publisher.sent if self.publisher else 0,
            "cameras": self.camera_statuses(),
        }

    def _cmd_pause(self, request: dict, frames: list[bytes]) -> dict:
        self.pause()
        return {"paused": True}

    def _cmd_resume(self, request: dict, frames: list[bytes]) -> dict:
        self.resume()
        return {"paused": False}

    def _cmd_set_support(self, request: dict, frames: list[bytes]) -> dict:
        if len(frames) != 2:
            raise UserError(f"set_support needs 2 binary frames after the JSON (image, mask), got {len(frames)}")
        camera = request.get("camera")
        if camera is not None:
            self.products.check_camera(camera)
        image, mask = support_from_bytes(frames[0], frames[1], self.stream.control.max_image_pixels,
                                         self.stream.control.max_image_bytes)
        support = self.replace_support(image, mask, camera=camera)
        return {"support_id": support.support_id, "width": int(image.shape[1]), "height": int(image.shape[0]),
                "cameras": [camera] if camera is not None else self.cameras}

    # -- what control and the console share (any thread) ----------------------------------------------
    @property
    def max_image_pixels(self) -> int:
        return self.stream.control.max_image_pixels

    @property
    def max_image_bytes(self) -> int:
        return self.stream.control.max_image_bytes

    def is_paused(self) -> bool:
        return bool(self.worker and self.worker.paused.is_set())

    def pause(self) -> None:
        self.worker.paused.set()
        self._announce("paused")

    def resume(self) -> None:
        self.worker.paused.clear()
        self._announce("resumed")

    def on_pipeline(self, fn: Callable[[], object]) -> object:
        """fn() on the inference thread between frames (the engines are not thread-safe); its result or error."""
        try:
            return self.worker.call(fn, self.stream.control.timeout_s)
        except TimeoutError:
            raise UserError(f"the pipeline did not get to the request within {self.stream.control.timeout_s} s; "
                            "it will still run when the pipeline gets to it") from None

    def replace_support(self, image: np.ndarray, mask: np.ndarray, undoing: bool = False, camera: str | None = None):
        """Make (uint8[H, W, 3] RGB image, bool[H, W] mask) the support of `camera` (None: of every camera) -> the
        new Support. The one path of control's set_support and the console; a bad support raises UserError and
        leaves the old one in force.

        undoing: going back to the history's previous support (Undo), so the current one leaves the history.
        """
        cameras = self.cameras if camera is None else [self.products.check_camera(camera)]
        # Packed for the history here, in the caller's thread: packing a large image takes a moment that the
        # pipeline's thread (frames) must not wait for. An undo packs nothing (its record is kept already).
        packed = None if undoing else pack(image, mask)

        def change():
            # The history changes with the support, on the pipeline's thread: also when the caller timed out.
            # The first camera's check refuses a bad support before any camera has changed.
            for name in cameras:
                support = self.products.apply(name, image, mask)
                if self.tally is not None:
                    self.tally.set_support(mask, name)
                history = self.products.histories[name]
                if undoing:
                    history.drop_current()
                else:
                    history.push(image, mask, support.support_id, packed=packed)
            return support

        support = self.on_pipeline(change)
        log.info("support replaced: %s (%s)", support.support_id, ", ".join(cameras))
        self._announce("support", cameras)
        return support

    def _announce(self, event: str, cameras: list[str] | None = None) -> None:
        for camera in cameras or self.cameras:
            self.publisher.submit_status(camera, {"event": event, **self._camera_status(camera)})
