"""Handing freed heap back to the operating system (docs/graph.md, "Memory").

glibc's malloc keeps freed memory on its heap; arrays of a few MiB land there once its mmap threshold has grown
(it grows as large blocks are freed, up to 32 MiB). A Lava worker that makes and drops a large temporary while it
prepares (a Dense model's weights, widened and narrowed) would keep those pages as its own private memory.
"""
from __future__ import annotations

import ctypes

_libc: list = []


def release_freed_memory() -> bool:
    """``malloc_trim(0)``: return the heap's free pages to the OS. False where the C library has no such call
    (not glibc); nothing else changes. Looks the call up in the running process (no ``find_library``, which would
    start a subprocess)."""
    if not _libc:
        try:
            _libc.append(getattr(ctypes.CDLL(None), "malloc_trim", None))
        except (OSError, AttributeError):
            _libc.append(None)
    trim = _libc[0]
    if trim is None:
        return False
    trim(0)
    return True
