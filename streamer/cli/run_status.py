"""`persense run`'s status line: every N seconds, one line per camera of what the operator would otherwise have to
open the console for (count, frames/s, latency, match quality, items passed, state, support warnings).

Logged at INFO on `persense.status`, so `-q` (warnings and errors only) silences it like any other progress line.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("persense.status")


def status_line(processor, camera: str) -> str:
    """One camera's line, from the same figures the console shows."""
    figures = processor.live.figures(camera)
    status = processor._camera_status(camera)
    shown = processor.live.latest(camera)
    parts = [f"camera {camera}:"]
    if figures["count"] is None:
        parts.append("no result yet")
    else:
        truth = getattr(shown.frame, "truth_count", None) if shown else None
        parts.append(f"count {figures['count']}" + (f" (truth {truth})" if truth is not None else ""))
        parts.append(f"{figures['fps'] or 0:.1f} frames/s")
        parts.append(f"latency {figures['latency_ms'] or 0:.0f} ms")
        parts.append(f"match quality {figures['match_quality']:.2f}")
        passed = shown.result.tally.get("passed_total") if shown else None
        if passed is not None:
            parts.append(f"passed {passed}")
    state = "paused" if status.get("paused") else status.get("state", "?")
    parts.append(f"source {state}")
    parts.append(f"{status.get('published', 0)} published")
    warnings = status.get("warnings") or []
    if warnings:
        parts.append("support warnings: " + "; ".join(warnings))
    return parts[0] + " " + ", ".join(parts[1:])


class WarningTally(logging.Handler):
    """Counts the warnings and errors logged since it was last read, and keeps the last one's text."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last = record.getMessage()

    def take(self) -> tuple[int, str]:
        count, last, self.count, self.last = self.count, self.last, 0, ""
        return count, last


class StatusLines:
    """Logs every camera's status line every `interval_s` seconds from a daemon thread, until stopped, and a summary
    of the warnings logged in the interval (a run's terminal otherwise scrolls them away unnoticed)."""

    def __init__(self, processor, interval_s: float):
        self.processor = processor
        self.interval_s = interval_s
        self.warnings = WarningTally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-line", daemon=True)

    def start(self) -> None:
        if self.interval_s > 0:
            logging.getLogger().addHandler(self.warnings)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        logging.getLogger().removeHandler(self.warnings)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for camera in self.processor.cameras:
                try:
                    log.info("%s", status_line(self.processor, camera))
                except Exception as exc:  # a status line must never take the run down
                    log.debug("status line of camera %s failed: %s", camera, exc)
            count, last = self.warnings.take()
            if count:
                log.info("%d warning(s) since the last status line; the last: %s", count, last[:200])
