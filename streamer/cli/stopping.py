"""A clean stop on signals for the long-running commands (`persense run`, `persense record`)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(*signals: signal.Signals) -> Iterator[threading.Event]:
    """An Event that any of `signals` sets while inside (instead of ending the process); the previous handlers
    come back on leaving. Light to import: callers install it before anything slow."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
