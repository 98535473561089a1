"""Keep a long run's memory from creeping up: large buffers straight from the OS, not the heap.

Evaluation and playback allocate and free frame-sized buffers (tens to hundreds of MB at 1080p)
thousands of times, between small results that live on. glibc serves buffers up to its dynamic
mmap threshold (which rises to 32 MB after the first large free) from the heap, and the small
survivors pin the heap, so a process's memory grew with the clip: measured, stdo-train at 1080p
x4 held 2.3 GB of anonymous memory for 30 frames and 8.1 GB for 480. With a fixed threshold of
1 MB every frame-sized buffer is its own mapping, returned on free: the same evaluation loop stayed
at 473 MB, flat. Every stdo CLI sets it at start; library users call `bounded_heap()` themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD_BYTES = 1 << 20


def bounded_heap(threshold: int = THRESHOLD_BYTES) -> bool:
    """Serve allocations of `threshold` bytes or more by mmap (glibc; elsewhere nothing to do). True if set."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (musl, macOS): their allocators return large blocks themselves
        log.debug("mallopt unavailable: heap left as it is")
        return False
