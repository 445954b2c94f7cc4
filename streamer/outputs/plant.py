"""The plant's outputs of one processor: built from `stream.outputs`, started before the publisher and stopped
after it (so the last messages reach them), fed by the publisher's fan-out."""

from __future__ import annotations

import logging

from streamer.errors import UserError
from streamer.outputs.config import OutputsConfig, modbus_layout
from streamer.outputs.fanout import OutputFanout

log = logging.getLogger(__name__)


class PlantOutputs:
    """Args: config: `stream.outputs`; cameras: (camera id, its CameraOutputs) in configured order; metrics:
    StreamMetrics. Only the enabled outputs' libraries are imported (each is an optional extra)."""

    def __init__(self, config: OutputsConfig, cameras: list[tuple[str, object]], metrics):
        self.outputs: list = []
        routes: dict[str, list] = {camera: [] for camera, _ in cameras}
        if config.mqtt.enabled:
            mqtt = _output("mqtt", "streamer.outputs.mqtt", "MqttOutput")(config.mqtt, metrics)
            self._add(mqtt, routes, [camera for camera, own in cameras if own.mqtt])
        if config.opcua.enabled:
            served = [camera for camera, own in cameras if own.opcua]
            opcua = _output("opcua", "streamer.outputs.opcua", "OpcUaOutput")(config.opcua, served, metrics)
            self._add(opcua, routes, served)
        if config.modbus.enabled:
            try:
                layout = modbus_layout(cameras, config.modbus)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            modbus = _output("modbus", "streamer.outputs.modbus", "ModbusOutput")(config.modbus, layout, metrics)
            self._add(modbus, routes, list(layout))
        self.fanout = OutputFanout(routes) if self.outputs else None

    def _add(self, output, routes: dict[str, list], cameras: list[str]) -> None:
        self.outputs.append(output)
        for camera in cameras:
            routes[camera].append(output)

    def start(self) -> None:
        """Start each output; the first that cannot start stops those already started and raises UserError."""
        started = []
        try:
            for output in self.outputs:
                output.start()
                started.append(output)
        except BaseException:
            for output in reversed(started):
                output.stop()
            raise

    def stop(self) -> None:
        for output in reversed(self.outputs):
            try:
                output.stop()
            except Exception:  # the others still stop
                log.exception("output %s: stopping failed", output.name)

    def status(self) -> dict[str, dict]:
        """output name -> its state (connected / serving / degraded, with a reason where degraded)."""
        return {output.name: output.status() for output in self.outputs}

    def alive(self) -> dict[str, bool]:
        return {f"output-{output.name}": output.alive() for output in self.outputs}


def _output(extra: str, module: str, name: str):
    """The output class, or UserError naming the extra to install where its library is missing."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        raise UserError(f"the {extra} output needs {exc.name}: pip install 'persense-stream[{extra}]'") from None
