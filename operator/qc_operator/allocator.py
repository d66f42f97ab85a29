"""Keeping the operator's resident memory near what it really uses: glibc malloc's arenas and trimming.

Invoked from `handlers.start` (before the first API call starts a thread) and run by it every
TRIM_INTERVAL_SECONDS. Measured with `python -m benchmarks.operator_memory` (400 QueueConsumers): live
Python objects were under 100 KiB per QueueConsumer (kopf's copy of each body most of it), while the
process's RSS grew by several times that. The rest is memory already freed but kept by malloc: the
`kubernetes` client runs each call in a thread (`asyncio.to_thread`), each thread gets its own malloc arena
(up to 8 per core), and a creation storm's freed bodies stay resident in them. Two arenas, and handing the
free pages back to the kernel once a minute, keep RSS close to the live heap. Other C libraries (musl) have
neither call: then nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from typing import Any

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt() parameter number (malloc.h)
ARENAS = 2  # the event loop's thread and the API calls' threads share these
TRIM_INTERVAL_SECONDS = 60.0


def _glibc() -> Any | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas() -> bool:
    """At most ARENAS malloc arenas for the threads started from now on; False where not glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, ARENAS))


def trim() -> bool:
    """Hand the free pages at the top and inside every arena back to the kernel; True if any went."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


async def trim_periodically(interval_seconds: float = TRIM_INTERVAL_SECONDS) -> None:
    """Trim every `interval_seconds`, until cancelled (at the operator's cleanup)."""
    while True:
        await asyncio.sleep(interval_seconds)
        trim()
