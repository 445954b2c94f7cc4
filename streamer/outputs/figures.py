"""What the servers (OPC UA, Modbus) show of one camera: its latest figures, folded from the published messages.

Servers hold state, not a stream: a client reads the newest values whenever it likes. So each camera's
messages are folded into one CameraFigures as they arrive (`fold`, a pure function), and a server copies
the newest figures into its address space or registers on its own loop. Folding never queues, so it needs no
bound; only reject pulses, which each have a due time, wait in a bounded list (streamer.outputs.modbus).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Source states as numbers for registers (docs/plant-modbus.md); the names are those of status messages.
SOURCE_STATES = ("unknown", "connecting", "streaming", "stalled", "reconnecting", "ended", "stopped")


@dataclass(frozen=True)
class LastReject:
    track_id: int
    station: str
    due_wall: float  # unix seconds when the item reaches the station
    due_mono: float  # the same moment on the processor's monotonic clock (seconds)
    pulse_ms: int
    missed: bool
    reasons: tuple[dict, ...]  # {"measure", "value", "min", "max", "unit"} each


@dataclass(frozen=True)
class CameraFigures:
    """One camera's figures. `passed_total` and `out_of_spec_total` are the tally's counters (the same numbers as
    the ZeroMQ result and tally messages); `results` counts the results seen (the result's seq + 1)."""

    count: int = 0
    match_quality: float = 0.0
    passed_total: int = 0
    out_of_spec_total: int = 0
    results: int = 0
    source_state: str = "unknown"
    rejects_total: int = 0
    missed_rejects_total: int = 0
    last_reject: LastReject | None = None
    updated_wall: float = 0.0  # unix seconds of the last message folded in
    changes: int = field(default=0, compare=False)  # +1 per message folded in: lets a server skip idle copies

    @property
    def source_state_code(self) -> int:
        return SOURCE_STATES.index(self.source_state) if self.source_state in SOURCE_STATES else 0


def fold(figures: CameraFigures, kind: str, payload: dict, now_wall: float) -> CameraFigures:
    """The figures after one message (`kind` result, tally, status or reject; others leave them as they are).

    Totals only move forward: a message that carries an older total (a tally sent just before a newer result)
    never takes a counter back.
    """
    if kind == "result":
        return replace(
            figures, count=int(payload.get("count", 0)), match_quality=float(payload.get("match_quality", 0.0)),
            passed_total=max(figures.passed_total, int(payload.get("passed_total", 0))),
            results=max(figures.results, int(payload.get("seq", -1)) + 1),
            updated_wall=now_wall, changes=figures.changes + 1)
    if kind == "tally":
        return replace(
            figures, passed_total=max(figures.passed_total, int(payload.get("passed_total", 0))),
            out_of_spec_total=max(figures.out_of_spec_total, int(payload.get("out_of_spec_total", 0))),
            updated_wall=now_wall, changes=figures.changes + 1)
    if kind == "status" and isinstance(payload.get("state"), str):
        return replace(figures, source_state=payload["state"], updated_wall=now_wall, changes=figures.changes + 1)
    if kind == "reject":
        reject = LastReject(
            track_id=int(payload["track_id"]), station=str(payload.get("station", "")),
            due_wall=float(payload["due_wall"]), due_mono=float(payload["due_mono"]),
            pulse_ms=int(payload.get("pulse_ms", 0)), missed=bool(payload.get("missed", False)),
            reasons=tuple(dict(r) for r in payload.get("reasons", ())))
        return replace(figures, rejects_total=figures.rejects_total + 1,
                       missed_rejects_total=figures.missed_rejects_total + int(reject.missed), last_reject=reject,
                       updated_wall=now_wall, changes=figures.changes + 1)
    return figures
