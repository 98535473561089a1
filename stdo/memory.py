"""Keep a long run's memory from creeping up: give the heap's free pages back to the OS once per frame.

Evaluation and playback allocate and free frame-sized buffers (tens of MB at 1080p) for every frame,
between small results that live on. glibc serves buffers up to its dynamic mmap threshold (which
rises to 32 MB after the first large free) from the heap, and the small survivors pin it, so the
freed pages stayed resident: measured, stdo-train at 1080p x4 held 2.3 GB of anonymous memory for
30 frames and 8.1 GB for 480. `malloc_trim(0)` returns every free page of every arena (glibc >= 2.8
also inside the heap, by madvise), so the loops over frames call `release_free_memory()` once per
frame. It is a per-frame cost (the pages are faulted in again), not a per-allocation one: the first
fix, a 1 MB mmap threshold for the whole process, made stdo-cluster 2.3x slower.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): their allocators return large blocks themselves
        log.debug("malloc_trim unavailable: heap left as it is")
        return None


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS (glibc); True if any were returned."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
