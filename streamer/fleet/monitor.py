"""What the fleet knows of each camera's worker: asked for its status every poll, turned into a state.

States: `pending` (Ray has not placed it; the reason says when no node could ever hold it, e.g. more GPUs than
any node has), `starting`, the camera's own state while it runs (`streaming`, `reconnecting`, ...), `restarting`
(its process or node died and Ray is bringing it back), `unresponsive` (placed, but not answering), `failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streamer.fleet.config import FleetCamera, Resources


@dataclass
class CameraEntry:
    """One camera of the fleet: its spec, its actor and the last answer of its worker."""

    spec: FleetCamera
    actor: object  # the Ray actor handle
    created: float = field(default_factory=time.monotonic)
    pending_ref: object = None  # the status request in flight
    asked_at: float = 0.0
    last: dict | None = None  # the worker's last status (streamer.fleet.worker.CameraWorker.status)
    state: str = "pending"
    reason: str = ""
    fps: float = 0.0

    def answered(self, status: dict) -> None:
        previous = self.last
        if previous is not None and previous["pid"] == status["pid"] and status["time"] > previous["time"]:
            self.fps = max(status["published"] - previous["published"], 0) / (status["time"] - previous["time"])
        elif previous is None or previous["pid"] != status["pid"]:
            self.fps = 0.0
        self.last = status
        self.state, self.reason = status["state"], ""

    def failed(self, state: str, reason: str) -> None:
        self.state, self.reason, self.fps = state, reason, 0.0

    def silent(self, nodes: list[dict], patience_s: float) -> None:
        """Its status request has been in flight for a while: not placed yet, or not answering."""
        if time.monotonic() - self.asked_at < patience_s:
            return
        if self.last is None:
            self.state, self.reason = "pending", pending_reason(self.spec.resources, nodes)
        elif self.state not in ("restarting", "failed"):
            self.state, self.reason = "unresponsive", "placed, but its status request is not answered"

    def row(self) -> dict:
        last = self.last or {}
        return {
            "node": last.get("node_ip"),
            "node_id": last.get("node_id"),
            "state": self.state,
            "reason": self.reason,
            "fps": round(self.fps, 2),
            "restarts": max(last.get("starts", 1) - 1, 0),
            "pid": last.get("pid"),
            "published": last.get("published", 0),
            "support_id": last.get("support_id"),
            "metrics": last.get("metrics"),
            "engines": self.spec.engines,
            "resources": self.spec.resources.model_dump(),
        }


def pending_reason(resources: Resources, nodes: list[dict]) -> str:
    """Why Ray has not placed a worker: a resource no alive node has enough of, else waiting for room.

    nodes: ray.nodes() (each with "Alive" and "Resources").
    """
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    for key, asked in (("GPU", resources.num_gpus), ("CPU", resources.num_cpus)):
        if asked > 0 and not any(have.get(key, 0) >= asked for have in alive):
            most = max((have.get(key, 0) for have in alive), default=0)
            return f"asks {asked:g} {key}, and no node of the cluster has more than {most:g}"
    return "waiting for Ray to place it (the nodes that could hold it are busy, or it is starting)"
