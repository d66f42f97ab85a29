"""The task the demo's workers run: pretend to work for the time the message asks, then record it done."""

from __future__ import annotations

import asyncio

import qc_worker
from devstack.traffic import record_done


@qc_worker.task(time_limit_seconds=30, max_delivery_attempts=5)
async def process(message: qc_worker.Message) -> None:
    body = message.json()
    await asyncio.sleep(float(body.get("work_seconds", 0.1)))
    record_done(str(body["id"]))  # before the ack: a crash in between makes a duplicate, never a loss
