"""Memory given back to the system after large, short-lived work (glibc keeps freed memory in per-thread arenas,
so a process's resident size stays at its peak otherwise)."""

from __future__ import annotations

import ctypes
import ctypes.util

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if ctypes.util.find_library("c") else None


def trim_memory() -> None:
    """Give the allocator's free memory back to the system (the buffers of many viewers stayed resident after
    they left; a 50 MP support's decoding buffers raised the next upload's peak)."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)
