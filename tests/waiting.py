"""Polling helper for tests that wait on threads, processes and real peers."""

import time


def wait_until(condition, timeout: float = 20.0, interval: float = 0.02) -> bool:
    """True as soon as condition() holds; False if it still does not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
