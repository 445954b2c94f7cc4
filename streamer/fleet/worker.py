"""What runs inside Ray: one camera's stream processor as an actor, and the registry that outlives its restarts.

A worker is the existing StreamProcessor for one camera, its publisher connected to the fleet's forwarder
instead of binding. Ray restarts a worker whose process dies by running its constructor again with the same
arguments, so its configuration comes back as it was; its support comes from the registry, which holds the one
the camera last had (set_support through the fleet updates it), so a restart keeps a support changed at run time.

These classes are plain Python; streamer.fleet.fleet makes them Ray actors (ray.remote) with their options.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import partial

import numpy as np

from streamer.config import Config
from streamer.errors import UserError, first_line

log = logging.getLogger(__name__)


class FleetRegistry:
    """Per camera: its current support and how many times its worker has started. Lives on the fleet's node."""

    def __init__(self):
        self._supports: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._starts: dict[str, int] = {}

    def put_support(self, camera: str, image: np.ndarray, mask: np.ndarray) -> None:
        self._supports[camera] = (image, mask)

    def support(self, camera: str) -> tuple[np.ndarray, np.ndarray] | None:
        return self._supports.get(camera)

    def started(self, camera: str) -> int:
        """A worker of `camera` started -> how many times one has (1 the first time)."""
        self._starts[camera] = self._starts.get(camera, 0) + 1
        return self._starts[camera]

    def forget(self, camera: str) -> None:
        self._supports.pop(camera, None)
        self._starts.pop(camera, None)


class CameraWorker:
    """One camera's StreamProcessor.

    Args:
        camera: its camera id (the only source in `config`).
        config: the processor's whole configuration (publish.connect to the fleet's ingest endpoint), as JSON: a
            few kilobytes that travel inline with the actor's creation, so a restart never needs an object that a
            lost node held.
        registry: the name of the fleet's FleetRegistry actor. A name, not its handle: a handle among an actor's
            arguments lives in the object store, and Ray could not restart the actor once that copy was lost.
        publish_options: the publisher's socket options (CURVE client keys of the forwarder), or None.
    """

    def __init__(self, camera: str, config: str, registry: str, publish_options: dict | None = None):
        import ray

        from streamer.engine_factory import build_engines
        from streamer.stream.processor import StreamProcessor

        self.camera = camera
        registry = ray.get_actor(registry)
        self.starts = ray.get(registry.started.remote(camera))
        support = ray.get(registry.support.remote(camera))
        if support is None:
            raise UserError(f"camera {camera}: the fleet registry holds no support for it")
        self.node_id = ray.get_runtime_context().get_node_id()
        self.node_ip = ray.util.get_node_ip_address()
        config = Config.model_validate_json(config)
        self.processor = StreamProcessor(config, build_engines(config.engines), support,
                                         publish_socket_options=publish_options,
                                         engine_factory=partial(build_engines, config.engines))
        self.processor.start()
        self.started_at = time.time()
        self.outcome: str | None = None  # why the processor stopped by itself, if it did
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="fleet-worker", daemon=True)
        self._watcher.start()
        log.info("camera %s: worker started on node %s (pid %d, start %d)", camera, self.node_ip, os.getpid(),
                 self.starts)

    def _watch(self) -> None:
        try:
            self.outcome = f"stopped: {self.processor.wait(self._stop)}"
        except UserError as exc:
            self.outcome = f"failed: {first_line(exc)}"
        except Exception as exc:  # reported in status, never a dead thread nobody hears of
            log.exception("camera %s: the processor failed", self.camera)
            self.outcome = f"failed: {type(exc).__name__}: {first_line(str(exc))[:200]}"

    def status(self) -> dict:
        processor = self.processor
        camera = processor.camera_statuses()[self.camera]
        http = processor.http
        metrics = None
        if http is not None:
            host = self.node_ip if http.host in ("0.0.0.0", "::", "") else http.host
            metrics = f"{host}:{http.port}"
        return {
            "camera": self.camera,
            "pid": os.getpid(),
            "node_id": self.node_id,
            "node_ip": self.node_ip,
            "starts": self.starts,
            "state": self.outcome or camera["state"],
            "published": camera["published"],
            "support_id": camera["support_id"],
            "paused": camera["paused"],
            "metrics": metrics,
            "time": time.time(),
        }

    def control(self, frames: list[bytes]) -> dict:
        """A control request's frames -> the processor's reply (the checks and handlers of `persense run`)."""
        return self.processor.control.handle(frames)

    def stop(self) -> None:
        self._stop.set()
        self.processor.stop()
