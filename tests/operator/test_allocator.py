"""`qc_operator.allocator`: memory freed by threads goes back to the kernel when trimmed (glibc, as in the
operator's image and on this machine)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from qc_operator import allocator


def rss_mib() -> float:
    line = next(
        x for x in Path(f"/proc/{os.getpid()}/status").read_text().splitlines() if x.startswith("VmRSS")
    )
    return int(line.split()[1]) / 1024


def test_memory_a_thread_freed_is_returned_to_the_kernel_by_a_trim() -> None:
    assert allocator.limit_arenas(), "glibc's mallopt refused M_ARENA_MAX"
    kept: list[list[bytes]] = []

    def allocate() -> None:  # many small blocks, as JSON bodies are, in a thread's arena
        kept.append([bytes(600) for _ in range(300_000)])

    thread = threading.Thread(target=allocate)
    thread.start()
    thread.join()
    with_blocks = rss_mib()
    # One block in 16 stays alive (as some objects of a burst outlive it): the heap cannot shrink from
    # its top, so without a trim the free space between them stays resident.
    survivors = kept.pop()[::16]
    freed = rss_mib()
    allocator.trim()
    trimmed = rss_mib()
    print(
        f"RSS with 180 MB of blocks {with_blocks:.0f} MiB, 15/16 freed {freed:.0f} MiB, "
        f"trimmed {trimmed:.0f} MiB"
    )
    assert trimmed < freed - 100, "the freed blocks stayed resident after the trim"
    assert len(survivors) == 300_000 // 16
