"""The Modbus TCP output (pymodbus): each camera's figures in holding registers, and a coil per reject station
pulsed when each rejected item is due there.

The register map (docs/plant-modbus.md is the contract), per camera from its base register: `REGISTERS`
names each value's offset; 32-bit values take two registers in the configured word order (high word first by
default). Input registers mirror the holding registers. The map is read-only: writes are refused (illegal
function). Registers are filled from the newest figures at each read, so a client reads the same figures that
the last published messages carried.

A reject message schedules its coil's pulse on the server's loop at `due_mono` (the processor's monotonic
clock, the loop's own) for `pulse_ms`; overlapping pulses of one coil merge. A message that arrives after its
pulse would have ended is counted (dropped, late); a missed reject (`missed: true`) is not pulsed, its count
shows in the registers.
"""

from __future__ import annotations

import logging
import threading

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from streamer.console.auth import is_loopback
from streamer.errors import UserError, first_line
from streamer.outputs.config import ModbusConfig
from streamer.outputs.figures import CameraFigures
from streamer.outputs.serving import FiguresBoard, LoopThread, check_port_free

log = logging.getLogger(__name__)

# Offsets in a camera's block: (name, offset, registers). Two registers: an unsigned 32-bit value.
REGISTERS = (
    ("count", 0, 2),                # objects in the last result
    ("passed_total", 2, 2),         # items counted crossing the lines since start
    ("out_of_spec_total", 4, 2),    # of those measured, out of spec
    ("results", 6, 2),              # results published (seq + 1): grows while the line runs
    ("rejects_total", 8, 2),        # reject messages (pulsed or missed)
    ("missed_rejects_total", 10, 2),  # rejects decided too late: the item had passed the station
    ("last_reject_track_id", 12, 2),
    ("last_reject_due_s", 14, 2),   # unix seconds when the last rejected item is due at the station
    ("last_reject_due_ms", 16, 1),  # and its milliseconds, 0-999
    ("match_quality_x1000", 17, 1),  # 0-1000
    ("source_state", 18, 1),        # streamer.outputs.figures.SOURCE_STATES index
    ("last_reject_pulse_ms", 19, 1),
    ("coil", 20, 1),                # the camera's reject coil's address
)
BLOCK_USED = 21
_U32 = 1 << 32
_U16_MAX = 0xFFFF
_COIL_BLOCK = 16 * 64  # coils served (addresses 0-1023); a camera's coil must lie inside


def camera_registers(figures: CameraFigures, coil: int, high_first: bool = True) -> list[int]:
    """One camera's figures -> its block's first BLOCK_USED register values (uint16 each); 32-bit counters wrap
    like a PLC's."""
    reject = figures.last_reject
    due = max(reject.due_wall, 0.0) if reject else 0.0
    values = {
        "count": figures.count, "passed_total": figures.passed_total,
        "out_of_spec_total": figures.out_of_spec_total, "results": figures.results,
        "rejects_total": figures.rejects_total, "missed_rejects_total": figures.missed_rejects_total,
        "last_reject_track_id": reject.track_id if reject else 0, "last_reject_due_s": int(due),
        "last_reject_due_ms": int(round((due - int(due)) * 1000)) % 1000,
        "match_quality_x1000": int(round(min(max(figures.match_quality, 0.0), 1.0) * 1000)),
        "source_state": figures.source_state_code,
        "last_reject_pulse_ms": min(reject.pulse_ms, _U16_MAX) if reject else 0, "coil": coil,
    }
    registers = [0] * BLOCK_USED
    for name, offset, width in REGISTERS:
        value = int(values[name])
        if width == 1:
            registers[offset] = min(max(value, 0), _U16_MAX)
            continue
        value %= _U32
        high, low = value >> 16, value & _U16_MAX
        registers[offset:offset + 2] = [high, low] if high_first else [low, high]
    return registers


class ModbusOutput:
    """Args: config: `stream.outputs.modbus`; layout: camera -> (base register, coil) (config.modbus_layout);
    metrics: StreamMetrics."""

    name = "modbus"

    def __init__(self, config: ModbusConfig, layout: dict[str, tuple[int, int]], metrics):
        if not is_loopback(config.host) and not config.allow_remote:
            raise UserError(f"modbus: refusing to bind {config.host} beyond loopback: Modbus TCP has no "
                            "authentication (set outputs.modbus.allow_remote: true to accept that, behind a firewall)")
        for camera, (_, coil) in layout.items():
            if coil >= _COIL_BLOCK:
                raise UserError(f"modbus: camera {camera}'s coil {coil} is beyond the {_COIL_BLOCK} coils served")
        self.config, self.layout, self.metrics = config, dict(layout), metrics
        metrics.output_series(self.name)
        self.board = FiguresBoard(list(layout), lambda: metrics.output_dropped.labels(self.name, "unreadable").inc())
        self.registers_size = max((base for base, _ in layout.values()), default=0) + config.registers_per_camera
        self.coils = [False] * _COIL_BLOCK
        self._off_at: dict[int, float] = {}  # coil -> loop time its pulse ends (the loop's thread only)
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._loop = LoopThread("output-modbus")
        self._server: ModbusTcpServer | None = None
        self.port: int | None = None

    # -- life ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if not is_loopback(self.config.host):
            log.warning("INSECURE: modbus: serving %s:%d beyond loopback without authentication (allow_remote)",
                        self.config.host, self.config.port)
        check_port_free(self.name, self.config.host, self.config.port)
        self._loop.start()
        try:
            self.port = self._loop.call(self._serve)
        except UserError:
            self._loop.stop()
            raise
        except (OSError, RuntimeError) as exc:
            self._loop.stop()
            raise UserError(f"modbus: cannot serve on {self.config.host}:{self.config.port}: "
                            f"{first_line(exc)} (is the port in use?)") from None
        self.metrics.output_up.labels(self.name).set(1)
        log.info("modbus: serving %s:%d (holding registers per camera: %s)", self.config.host, self.port,
                 ", ".join(f"{camera} at {base}, coil {coil}" for camera, (base, coil) in self.layout.items()))

    async def _serve(self) -> int:
        size = self.registers_size
        blocks = ([SimData(0, count=_COIL_BLOCK, values=False, datatype=DataType.BITS)],
                  [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                  [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
                  [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)])
        device = SimDevice(0, simdata=blocks, action=self._on_request, use_bit_addressing=True)
        self._server = ModbusTcpServer(device, address=(self.config.host, self.config.port))
        await self._server.serve_forever(background=True)
        return self._server.transport.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None and self._loop.alive():
            try:
                self._loop.call(self._server.shutdown, timeout=5.0)
            except Exception as exc:  # stopping goes on whatever the server says
                log.warning("modbus: stopping the server: %s", first_line(exc))
        self._loop.stop()
        self.metrics.output_up.labels(self.name).set(0)

    def alive(self) -> bool:
        return self._loop.alive()

    def status(self) -> dict:
        return {"state": "serving" if self._loop.alive() else "stopped", "port": self.port}

    # -- the publisher's thread -----------------------------------------------------------------------
    def offer(self, camera: str, kind: str, payload: dict) -> None:
        figures = self.board.fold(camera, kind, payload)
        if figures is None or kind != "reject":
            if figures is not None:
                self.metrics.output_messages.labels(self.name).inc()
            return
        reject = figures.last_reject
        if reject.missed:
            self.metrics.output_messages.labels(self.name).inc()
            return
        with self._pending_lock:
            if self._pending >= self.config.max_pending_pulses:
                self.metrics.output_dropped.labels(self.name, "queue_full").inc()
                return
            self._pending += 1
        coil = self.layout[camera][1]
        self._loop.loop.call_soon_threadsafe(self._schedule, coil, reject.due_mono, reject.pulse_ms / 1000.0)

    # -- the server's loop --------------------------------------------------------------------------
    def _schedule(self, coil: int, due: float, length_s: float) -> None:
        loop = self._loop.loop
        end = due + length_s
        if loop.time() >= end:
            self._release()
            self.metrics.output_dropped.labels(self.name, "late").inc()
            log.warning("modbus: a reject pulse of coil %d arrived %.3f s after its end; not pulsed", coil,
                        loop.time() - end)
            return
        loop.call_at(due, self._pulse_on, coil, end)

    def _pulse_on(self, coil: int, end: float) -> None:
        self._release()
        self.coils[coil] = True
        self._off_at[coil] = max(self._off_at.get(coil, 0.0), end)
        self.metrics.output_messages.labels(self.name).inc()
        self._loop.loop.call_at(end, self._pulse_off, coil)

    def _pulse_off(self, coil: int) -> None:
        if self._loop.loop.time() >= self._off_at.get(coil, 0.0):  # a later pulse of this coil may still run
            self.coils[coil] = False

    def _release(self) -> None:
        with self._pending_lock:
            self._pending -= 1

    async def _on_request(self, function_code, start_address, address, count, registers, set_values):
        """pymodbus's hook on every request: refuse writes, fill the block read from the newest figures."""
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        if function_code in (3, 4):
            high_first = self.config.word_order == "high_first"
            for camera, figures in self.board.snapshot().items():
                base, coil = self.layout[camera]
                registers[base:base + BLOCK_USED] = camera_registers(figures, coil, high_first)
        elif function_code == 1:
            packed = SimUtils.bitsToRegisters(self.coils)
            registers[:len(packed)] = packed
        return None
