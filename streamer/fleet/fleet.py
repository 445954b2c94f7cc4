"""The fleet: cameras as Ray actors (streamer.fleet.worker), one forwarder, one control socket, a status poller.

Threads in the fleet's process: the forwarder (streamer.fleet.forwarder), the control thread (the ControlServer
of `persense run`, with the fleet's handlers, streamer.fleet.requests) and the poller, which asks every worker for
its status each `poll_s`, derives states (streamer.fleet.monitor) and keeps the Prometheus targets file current.
Ray owns placement, restarts and moving cameras off a node that left; the fleet only asks it for them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

import zmq

from streamer.config import Config
from streamer.errors import UserError, first_line
from streamer.fleet.cluster import connect
from streamer.fleet.config import FleetCamera, FleetConfig, check_engine_set
from streamer.fleet.file_sd import FileSD, targets
from streamer.fleet.forwarder import Forwarder
from streamer.fleet.monitor import CameraEntry
from streamer.fleet.worker import CameraWorker, FleetRegistry

log = logging.getLogger(__name__)

_STOP_WORKER_S = 10.0


class Fleet:
    """Args:
        config: the fleet file's contents.
        address: the Ray cluster (overrides config.fleet.address); None and no address there: a local Ray.
        reload_source: reads the fleet file again (the control command `reload`); None: not from a file.
    """

    def __init__(self, config: FleetConfig, address: str | None = None,
                 reload_source: Callable[[], FleetConfig] | None = None):
        self.config = config
        self._reload_source = reload_source
        self.settings = config.fleet
        self.address = address or self.settings.address
        self._entries: dict[str, CameraEntry] = {}
        self._lock = threading.RLock()  # the entries: the control thread adds and removes, the poller reads
        self._context: zmq.Context | None = None
        self.forwarder: Forwarder | None = None
        self.control = None
        self.auth = None
        self._registry = None
        self._worker_class = None
        self._publish_options: dict | None = None
        self._owns_ray = False
        self._file_sd = FileSD(self.settings.file_sd) if self.settings.file_sd else None
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="fleet-poller", daemon=True)
        self._nodes: list[dict] = []
        self._stopped = False

    # -- life ------------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from streamer.fleet.requests import fleet_control

        # Everything that can be checked here is, before joining Ray: a bad key or file is one line at once.
        self._check_exposure()
        curve = self._load_curve()
        supports = {camera.camera_id: self._read_support(camera) for camera in self.config.cameras}
        self._owns_ray = connect(self.address, self.settings.local)
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        # On the fleet's own node, which leaves only with the fleet; it holds nothing a node loss could take.
        self._registry_name = f"persense-fleet-registry-{uuid.uuid4().hex[:12]}"
        self._registry = ray.remote(FleetRegistry).options(
            name=self._registry_name, num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote()
        self._worker_class = ray.remote(CameraWorker)
        self._context = zmq.Context()
        if curve is not None:
            self._start_authentication(curve)
        self.forwarder = Forwarder(self._context, self.settings.publish, self.settings.ingest, self.settings.hwm,
                                   curve.socket_options() if curve else None)
        self.control = fleet_control(self, self._context, curve.socket_options() if curve else None,
                                     self._reload_source)
        if self.auth is not None:
            self.auth.watch({**self.forwarder.sockets, "control": self.control.socket})
        self.forwarder.start()
        self.control.start()
        self._nodes = ray.nodes()
        for camera in self.config.cameras:
            self._launch(camera, supports[camera.camera_id])
        self._poller.start()

    def _check_exposure(self) -> None:
        from streamer.stream.security import check_exposure

        s = self.settings
        check_exposure({"fleet publish": s.publish, "fleet ingest": s.ingest, "fleet control": s.control},
                       s.security.curve, s.allow_insecure)

    def _load_curve(self):
        """The fleet's CURVE keys where configured -> the CurveServer, or None. The workers are CURVE clients of
        the ingest endpoint: their key pair travels with them (in their actor's arguments) to any node."""
        security = self.settings.security
        if not security.curve:
            return None
        from streamer.stream.security import CurveServer, client_socket_options

        curve = CurveServer.load(security.server_key, security.authorized_keys)
        self._publish_options = client_socket_options(security.worker_key, security.server_key)
        return curve

    def _start_authentication(self, curve) -> None:
        """The authenticator, which must run before the fleet's sockets bind."""
        from streamer.stream.security import Authentication

        self.auth = Authentication(self._context, curve, lambda socket: log.warning("CURVE refused a client of "
                                                                                    "the fleet's %s", socket))
        self.auth.start()

    def stop(self) -> None:
        """Stop the workers (each finishes its frame in flight), the poller, the sockets; Ray if we started it."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join(5.0)
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        self._stop_workers(entries)
        for part in (self.control, self.forwarder, self.auth):
            if part is not None:
                part.stop()
        if self._context is not None:
            self._context.destroy(linger=0)
        if self._owns_ray:
            import ray

            ray.shutdown()

    # -- cameras ---------------------------------------------------------------------------------------
    @property
    def cameras(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def entry(self, camera: str) -> CameraEntry:
        with self._lock:
            entry = self._entries.get(camera)
        if entry is None:
            raise UserError(f"unknown camera {str(camera)[:64]!r}; the fleet has: {', '.join(self.cameras) or 'none'}")
        return entry

    def add_camera(self, camera: FleetCamera) -> None:
        """Start one more camera; the others are not touched. UserError for a duplicate id or an unknown engine
        set, or a support that cannot be read."""
        with self._lock:
            if camera.camera_id in self._entries:
                raise UserError(f"camera {camera.camera_id} is already in the fleet")
        try:
            check_engine_set(self.config, camera)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self._launch(camera, self._read_support(camera))

    def remove_camera(self, camera: str) -> None:
        """Stop one camera's worker for good; the others are not touched."""
        with self._lock:
            entry = self.entry(camera)
            del self._entries[camera]
        self._stop_workers([entry])
        import ray

        ray.get(self._registry.forget.remote(camera))
        log.info("camera %s: removed", camera)

    def reload(self, config: FleetConfig) -> dict:
        """Make the running cameras those of `config`: new ones start, missing ones stop, changed ones restart;
        the rest are not touched -> {"added": [...], "removed": [...], "restarted": [...]}."""
        if config.fleet != self.config.fleet:
            log.warning("fleet: reload changes cameras, engine sets and defaults only; the fleet: section takes "
                        "effect at the next start")
        wanted = {camera.camera_id: camera for camera in config.cameras}
        current = {camera: self.entry(camera).spec for camera in self.cameras}
        changed_everywhere = (config.defaults != self.config.defaults)
        removed = [c for c in current if c not in wanted]
        restarted = [c for c in current if c in wanted and (
            wanted[c] != current[c] or changed_everywhere
            or config.engine_sets.get(wanted[c].engines) != self.config.engine_sets.get(current[c].engines))]
        added = [c for c in wanted if c not in current]
        supports = {c: self._read_support(wanted[c], config) for c in added + restarted}
        self.config = self.config.model_copy(update={"cameras": config.cameras, "defaults": config.defaults,
                                                     "engine_sets": config.engine_sets})
        for camera in removed + restarted:
            self.remove_camera(camera)
        for camera in restarted + added:
            self._launch(wanted[camera], supports[camera])
        return {"added": added, "removed": removed, "restarted": restarted}

    def keep_support(self, camera: str, image, mask) -> None:
        """A support the camera's worker took at run time: its restarts start from it."""
        import ray

        ray.get(self._registry.put_support.remote(camera, image, mask))

    def _read_support(self, camera: FleetCamera, config: FleetConfig | None = None):
        """The camera's support, read here (the worker may run where these files are not): its own, else the
        defaults', else its simulator's own -> (uint8[H, W, 3] RGB, bool[H, W]). First its source is checked
        (open_source opens nothing): a bad URI or option is one line here, not a worker dying on every node."""
        from streamer.stream.cameras import default_source_factory
        from streamer.stream.support import camera_supports, initial_support

        try:
            default_source_factory(camera.source())
        except UserError as exc:
            raise UserError(f"camera {camera.camera_id}: {exc}") from None
        defaults = (config or self.config).defaults
        if camera.support is not None:
            return camera_supports([camera])[camera.camera_id]
        try:
            return initial_support(defaults.support.image, defaults.support.mask, [camera.source()])
        except UserError as exc:
            raise UserError(f"camera {camera.camera_id}: {exc}") from None

    def _launch(self, camera: FleetCamera, support) -> None:
        import ray

        ray.get(self._registry.put_support.remote(camera.camera_id, *support))
        resources = camera.resources
        actor = self._worker_class.options(
            num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
            max_restarts=self.settings.max_restarts, max_task_retries=0,
            # Status requests are answered while a set_support waits for the pipeline.
            max_concurrency=4,
            # Cameras go to different nodes where they can; when a node leaves, Ray restarts its cameras elsewhere.
            scheduling_strategy="SPREAD",
        ).remote(camera.camera_id, self._worker_config(camera).model_dump_json(), self._registry_name,
                 self._publish_options)
        with self._lock:
            self._entries[camera.camera_id] = CameraEntry(camera, actor)
        log.info("camera %s: asked Ray for a worker (%g CPU, %g GPU)", camera.camera_id, resources.num_cpus,
                 resources.num_gpus)

    def _worker_config(self, camera: FleetCamera) -> Config:
        """The camera's processor configuration: the defaults, its engines and source, publishing to the
        forwarder, control on the worker's loopback only (the fleet routes requests to it through Ray)."""
        raw = self.config.defaults.model_dump()
        raw["engines"] = self.config.engine_sets[camera.engines].model_dump()
        raw["support"] = {"image": None, "mask": None}
        stream = raw["stream"]
        stream["sources"] = [camera.source().model_dump()]
        stream["publish"].update(endpoint=self._ingest_for_workers(), connect=True)
        stream["control"]["endpoint"] = "tcp://127.0.0.1:0"
        stream["metrics"].update(host=self.settings.metrics_host, port=0)
        stream["console"]["enabled"] = False
        stream["security"] = {"server_key": None, "authorized_keys": None}
        stream["max_frames"] = None
        return Config.model_validate(raw)

    def _ingest_for_workers(self) -> str:
        """The forwarder's ingest endpoint as a worker on any node connects to it (a wildcard is no address)."""
        endpoint = self.forwarder.ingest
        if endpoint.startswith("tcp://"):
            host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
            if host in ("0.0.0.0", "*", "[::]"):
                import ray

                endpoint = f"tcp://{self.settings.ingest_host or ray.util.get_node_ip_address()}:{port}"
        return endpoint

    def _stop_workers(self, entries: list[CameraEntry]) -> None:
        import ray

        # A worker that never answered (not placed yet) has nothing to finish: it is only killed.
        refs = {entry.spec.camera_id: entry.actor.stop.remote() for entry in entries if entry.last is not None}
        if refs:
            ray.wait(list(refs.values()), num_returns=len(refs), timeout=_STOP_WORKER_S)
        for entry in entries:
            try:
                ray.kill(entry.actor, no_restart=True)
            except Exception as exc:  # already gone
                log.debug("camera %s: kill: %s", entry.spec.camera_id, first_line(exc))

    # -- status ----------------------------------------------------------------------------------------
    def status(self) -> dict:
        """camera -> node, state, frames/s, restarts ...; and the fleet's endpoints and nodes."""
        with self._lock:
            rows = {camera: entry.row() for camera, entry in self._entries.items()}
        nodes = [{"node_id": n.get("NodeID"), "address": n.get("NodeManagerAddress"), "alive": bool(n.get("Alive")),
                  "resources": {k: v for k, v in n.get("Resources", {}).items() if k in ("CPU", "GPU")}}
                 for n in self._nodes]
        return {"cameras": rows, "nodes": nodes,
                "publish": self.forwarder.publish if self.forwarder else None,
                "control": self.control.endpoint if self.control else None}

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.poll_s):
            try:
                self.poll_once()
            except Exception:  # the poller must outlive a bad answer
                log.exception("fleet: polling the workers failed")

    def poll_once(self, wait_s: float | None = None) -> None:
        """Ask every worker without a request in flight for its status; take in the answers that came."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        self._nodes = ray.nodes()
        with self._lock:
            entries = list(self._entries.values())
        now = time.monotonic()
        for entry in entries:
            if entry.pending_ref is None:
                entry.pending_ref, entry.asked_at = entry.actor.status.remote(), now
        refs = [entry.pending_ref for entry in entries]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.settings.poll_s if wait_s is None else wait_s)
        ready = set(ready)
        for entry in entries:
            if entry.pending_ref not in ready:
                entry.silent(self._nodes, patience_s=2 * self.settings.poll_s)
                continue
            ref, entry.pending_ref = entry.pending_ref, None
            try:
                entry.answered(ray.get(ref, timeout=1.0))
            except GetTimeoutError:
                continue
            except RayActorError as exc:
                entry.failed(self._after_death(entry), first_line(str(exc))[:300])
        if self._file_sd is not None:
            with self._lock:
                rows = {camera: entry.row() for camera, entry in self._entries.items()
                        if entry.state not in ("restarting", "failed", "pending")}
            self._file_sd.update(targets(rows))

    def _after_death(self, entry: CameraEntry) -> str:
        if entry.last is None:
            return "failed"  # it never started: its constructor failed, and Ray does not retry that
        limit = self.settings.max_restarts
        restarts = entry.last.get("starts", 1) - 1
        return "restarting" if limit < 0 or restarts < limit else "failed"
