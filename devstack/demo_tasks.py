"""The tasks the demo and end-to-end workers run: pretend to work for the time the message asks, then
record it done (`process` on the event loop, `hog` in the process pool, where it can also outgrow the pod).
"""

from __future__ import annotations

import asyncio
import time

import qc_worker
from devstack.traffic import record_done


@qc_worker.task(time_limit_seconds=30, max_delivery_attempts=5)
async def process(message: qc_worker.Message) -> None:
    body = message.json()
    await asyncio.sleep(float(body.get("work_seconds", 0.1)))
    record_done(str(body["id"]))  # before the ack: a crash in between makes a duplicate, never a loss


@qc_worker.task(time_limit_seconds=60, max_delivery_attempts=3)
def hog(message: qc_worker.Message) -> None:
    """In the process pool: work for the time the message asks, or allocate what it asks (to meet the
    pod's memory limit, whose OOM kill takes this process, not the worker)."""
    body = message.json()
    allocate_mib = int(body.get("allocate_mib", 0))
    if allocate_mib:
        held = b"\x01" * (allocate_mib << 20)  # written, so every page is really charged to the cgroup
        time.sleep(5)
        del held
    time.sleep(float(body.get("work_seconds", 0.1)))
    record_done(str(body["id"]))
