"""Who asked for a change: the console token's name, the CURVE client's key name, or "local".

The request's handler sets the name for the length of the request (`acting_as`); the processor's operations read it
(`current_actor`) when they write the audit trail. A context variable, so that each request's thread (and the
console's worker threads, which copy the context) sees its own caller.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

LOCAL = "local"
_ACTOR: ContextVar[str] = ContextVar("persense_actor", default=LOCAL)


def current_actor() -> str:
    return _ACTOR.get()


@contextmanager
def acting_as(name: str | None):
    token = _ACTOR.set(name or LOCAL)
    try:
        yield
    finally:
        _ACTOR.reset(token)
