"""The stream processor: cameras -> newest-frame slots -> inference -> publisher, plus control and metrics.

Threads: one supervisor per camera (capture), one inference thread (or, with `stream.workers` above 1, a
dispatcher, worker processes and a collector that hands results on in capture order: streamer.stream.parallel), one
publisher thread, the control thread and the HTTP server (metrics, probes and the operator console,
streamer.console). They meet only at bounded buffers, so none waits on another.
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
from streamer.sources.base import SourceState
from streamer.stream.cameras import default_source_factory
from streamer.stream.control import ControlServer
from streamer.stream.metrics import StreamMetrics
from streamer.stream.notes import PRODUCT, CollapseReasons, NotingSink, TruthInForce
from streamer.stream.publisher import Publisher
from streamer.stream.security import Authentication, start_authentication
from streamer.stream.slots import FrameSlots
from streamer.stream.processor_ops import ProcessorOperations
from streamer.stream.products import CameraProducts
from streamer.stream.support import PrototypeCache
from streamer.stream.parallel import ParallelWorker
from streamer.stream.worker import InferenceWorker
from streamer.stream.worker_choice import build_worker, resolved_product_threads

log = logging.getLogger(__name__)

_FINISHED = (SourceState.ENDED, SourceState.STOPPED)
_STOP_CAMERAS_S = 2.0  # all cameras together, not each


class StreamProcessor(ProcessorOperations):
    """Runs one configuration until stopped.

    Args:
        config: the whole configuration (config.stream says what to open, bind and serve).
        engines: the models.
        support: (uint8[H, W, 3] RGB image, bool[H, W] mask), the one-shot support set of every camera without
            one of its own.
        camera_supports: camera id -> its own (image, mask): a product per camera (streamer.stream.products).
        camera_products: camera id -> its configured products (streamer.stream.product_examples): several products on
            one camera, or one with negative examples; the first is the camera's default product.
        publish_socket_options: the publisher's socket options instead of the CURVE server's (a fleet's worker,
            whose publisher connects to the forwarder as a CURVE client).
        source_factory: (SourceConfig) -> a zero-argument callable opening a FrameSource; default open_source.
        supervisor_factory: the CameraSupervisor class or a stand-in with its signature.
        engine_factory: with `stream.workers` above 1, a picklable zero-argument callable that builds each worker's
            engines (e.g. functools.partial(build_engines, config.engines)); None: copies of `engines`.
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
        camera_products: dict | None = None,
        engine_factory: Callable[[], EngineSet] | None = None,
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
        self._initial_products = camera_products or {}
        for camera, products in self._initial_products.items():
            labels[camera] = products[0].label or labels.get(camera)
        self.products = CameraProducts(engines, config.pipeline, gates, self.cache,
                                       labeler=build_label_extractor(config.engines.cle), labels=labels,
                                       history_bytes=self.stream.console.support_history_bytes,
                                       max_products=self.stream.max_products,
                                       product_threads=resolved_product_threads(self.stream.product_threads),
                                       default_names={c: p[0].name for c, p in self._initial_products.items()})
        self._initial_supports = {camera: (camera_supports or {}).get(camera, support) for camera in self.cameras}
        for camera, products in self._initial_products.items():
            if products[0].support is not None:
                self._initial_supports[camera] = products[0].support
        self._source_factory = source_factory or default_source_factory
        self._supervisor_factory = supervisor_factory
        self._publish_socket_options = publish_socket_options
        self._engine_factory = engine_factory
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
        self.worker: InferenceWorker | ParallelWorker | None = None
        self.auth: Authentication | None = None
        self.tally = None  # streamer.stream.tally_sink.TallySink where stream.tally is active
        self.archive = None  # streamer.archive.recorder.Archive where stream.archive is enabled
        self.outputs = None  # streamer.outputs.plant.PlantOutputs where stream.outputs enables one
        self.truth = TruthInForce()  # which kind of the simulator's objects each support shows
        self._stopped = False

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
            # A start-up support is the product the source's truth counts (a simulator's own, or the one it draws).
            self.truth.note(support.support_id, PRODUCT)
            log.info("camera %s: support %s ready (%s)", camera, support.support_id, self.products.engines.name)
        self._start_products(self._initial_products)
        self._context = zmq.Context()
        self.auth = start_authentication(self._context, self.stream,
                                         lambda socket: self.metrics.auth_denied.labels(socket).inc())
        curve_options = self.auth.curve.socket_options() if self.auth else None
        if self.stream.outputs.any:
            from streamer.outputs.plant import PlantOutputs

            self.outputs = PlantOutputs(self.stream.outputs, [(s.camera_id, s.outputs) for s in self.stream.sources],
                                        self.metrics)
            self.outputs.start()
        self.publisher = Publisher(self._context, self.stream.publish, self.metrics, self.camera_statuses,
                                   limit=self.stream.max_frames,
                                   socket_options=self._publish_socket_options or curve_options,
                                   fanout=self.outputs.fanout if self.outputs else None)
        if self.stream.control.endpoint:
            handlers = {"status": self._cmd_status, "pause": self._cmd_pause, "resume": self._cmd_resume,
                        "set_support": self._cmd_set_support, "mark": self._cmd_mark, **self._product_handlers()}
            self.control = ControlServer(
                self._context, self.stream.control, handlers,
                binary_frames={"set_support": 2, "add_product": 2, "add_negative": 2},
                on_request=lambda outcome: self.metrics.control_requests.labels(outcome).inc(),
                on_restart=self.metrics.control_restarts.inc, socket_options=curve_options,
            )
        if self.auth is not None:
            publish = None if self.stream.publish.connect else self.publisher.socket
            self.auth.watch({"publish": publish, "control": self.control and self.control.socket})
        if self.stream.archive.enabled:
            self.archive = self._open_archive()
        self.http, self.console_http = self._http_servers()
        self.metrics.watch_sources(self._source_snapshots)
        self.worker = build_worker(self.config, self.products, self.slots, self._result_sink(), self.metrics,
                                   self._engine_factory)
        for part in (self.archive, self.publisher, self.worker, self.control, self.http, self.console_http):
            if part is not None:
                part.start()
        for source in self.stream.sources:
            self.supervisors[source.camera_id] = self._make_supervisor(source)
        for supervisor in self.supervisors.values():
            supervisor.start()

    def _result_sink(self):
        """Publisher and live view; in front of them the tally (tracks, counting lines, items) where configured,
        and first of all the notes (the truth in force, a collapsed count's reason) that everything after shows."""
        sink = ResultTee(self.publisher, self.live)
        if self.archive is not None:
            from streamer.archive.recorder import ArchiveTee

            sink = ArchiveTee(sink, self.archive)
        notes = CollapseReasons(self.config.pipeline.presence_threshold)
        if not self.stream.tally.active:
            return NotingSink(sink, self.truth, notes)
        from streamer.stream.tally_sink import TallySink

        self.tally = TallySink(sink, self.stream.tally, self.cameras, self.metrics, self.publisher.submit_message,
                               on_reject=self.archive.note_reject if self.archive is not None else None)
        for camera, (_, mask) in self._initial_supports.items():
            self.tally.set_support(mask, camera)
        for camera, products in self._initial_products.items():
            for product in products[1:]:  # a configured product's items are judged against its own spec
                if product.support is not None:
                    self.tally.set_support(product.support[1], camera, product=product.name)
        return NotingSink(self.tally, self.truth, notes)

    def _open_archive(self):
        """The archive (stream.archive), with the start-up supports kept for replays."""
        from streamer.archive.recorder import Archive

        def out_of_spec_total(camera: str) -> int | None:
            return self.items_of(camera).get("out_of_spec_total")

        archive = Archive(self.stream.archive, self.cameras, self.metrics.registry, self.publisher.submit_message,
                          out_of_spec_total)
        for camera, (image, mask) in self._initial_supports.items():
            archive.note_support(self.products.support_id(camera), image, mask)
        log.info("archive: keeping frames in %s (at most %d MB)", archive.writer.path,
                 self.stream.archive.max_bytes // 2**20)
        return archive

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
        # The browsers' live streams end first, on their own: a stream still open when the HTTP server goes down
        # is cancelled mid-write (an ERROR and a CancelledError traceback per viewer).
        self.live.close()
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
        # The outputs after the publisher: its last messages reach them.
        for part in (self.worker, self.archive, self.publisher, self.outputs, self.control, self.http,
                     self.console_http, self.auth):
            if part is not None:
                part.stop()
        self.products.close()
        if self._context is not None:
            # destroy, not term: a socket a stuck thread still holds must not keep the process alive.
            self._context.destroy()

