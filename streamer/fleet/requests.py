"""The fleet's control socket: the ControlServer of `persense run` with the fleet's commands.

Fleet commands: `status` (every camera: node, state, frames/s, restarts), `add_camera` {"camera": {...}} (a camera
as the fleet file gives one), `remove_camera` {"camera": ID}, `reload` (the fleet file again, where the fleet was
started from one). Camera commands, routed by "camera" to that camera's worker (without "camera": to every
camera): `set_support` (2 binary frames, image and mask), `pause`, `resume`. A set_support that succeeded is kept
in the fleet's registry, so the camera's worker keeps it across restarts.
"""

from __future__ import annotations

import json
from typing import Callable

import zmq

from streamer.errors import UserError
from streamer.fleet.config import FleetConfig, parse_camera
from streamer.stream.config import ControlConfig
from streamer.stream.control import ControlServer

ROUTED = ("set_support", "pause", "resume")


def fleet_control(fleet, context: zmq.Context, socket_options: dict | None,
                  reload_source: Callable[[], FleetConfig] | None = None) -> ControlServer:
    """The fleet's ControlServer on fleet.settings.control. reload_source: reads the fleet file again."""
    requests = FleetRequests(fleet, reload_source)
    handlers = {"status": requests.status, "add_camera": requests.add_camera,
                "remove_camera": requests.remove_camera, "reload": requests.reload,
                **{cmd: requests.route for cmd in ROUTED}}
    config = ControlConfig(endpoint=fleet.settings.control)
    return ControlServer(context, config, handlers, binary_frames={"set_support": 2}, socket_options=socket_options)


class FleetRequests:
    def __init__(self, fleet, reload_source: Callable[[], FleetConfig] | None):
        self.fleet = fleet
        self.reload_source = reload_source

    def status(self, request: dict, frames: list[bytes]) -> dict:
        return self.fleet.status()

    def add_camera(self, request: dict, frames: list[bytes]) -> dict:
        spec = request.get("camera")
        if not isinstance(spec, dict):
            raise UserError('add_camera needs "camera": {"camera_id": ..., "uri": ...}')
        camera = parse_camera(spec)
        self.fleet.add_camera(camera)
        return {"camera": camera.camera_id}

    def remove_camera(self, request: dict, frames: list[bytes]) -> dict:
        camera = request.get("camera")
        if not isinstance(camera, str):
            raise UserError('remove_camera needs "camera": ID')
        self.fleet.remove_camera(camera)
        return {"camera": camera}

    def reload(self, request: dict, frames: list[bytes]) -> dict:
        if self.reload_source is None:
            raise UserError("this fleet was not started from a file; use add_camera and remove_camera")
        return self.fleet.reload(self.reload_source())

    def route(self, request: dict, frames: list[bytes]) -> dict:
        """A camera command to its worker (or to every worker) -> its reply, or {"cameras": {id: reply}}."""
        camera = request.get("camera")
        if camera is not None and not isinstance(camera, str):
            raise UserError('"camera" must be a camera id')
        names = [camera] if camera is not None else self.fleet.cameras
        replies = {name: self._ask(name, request, frames) for name in names}
        if camera is not None:
            reply = replies[camera]
            if not reply.get("ok"):
                raise UserError(f"camera {camera}: {reply.get('error')}")
            return {key: value for key, value in reply.items() if key != "ok"}
        return {"cameras": replies}

    def _ask(self, camera: str, request: dict, frames: list[bytes]) -> dict:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        entry = self.fleet.entry(camera)
        # The worker's request carries its own camera: it runs the same checks as `persense run`'s control.
        body = [json.dumps({**request, "camera": camera}).encode(), *frames]
        timeout = self.fleet.config.defaults.stream.control.timeout_s
        try:
            reply = ray.get(entry.actor.control.remote(body), timeout=timeout)
        except GetTimeoutError:
            return {"ok": False, "error": f"its worker did not answer within {timeout:g} s"}
        except RayActorError:
            return {"ok": False, "error": "its worker is not running (restarting or pending); try again"}
        if reply.get("ok") and request["cmd"] == "set_support":
            self._keep_support(camera, frames)
        return reply

    def _keep_support(self, camera: str, frames: list[bytes]) -> None:
        from streamer.stream.support import support_from_bytes

        limits = self.fleet.config.defaults.stream.control
        image, mask = support_from_bytes(frames[0], frames[1], limits.max_image_pixels, limits.max_image_bytes)
        self.fleet.keep_support(camera, image, mask)
