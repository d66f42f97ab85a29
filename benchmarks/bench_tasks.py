"""Tasks for the worker benchmark, imported as `benchmarks.bench_tasks` by pool processes and `qc-worker`."""

from __future__ import annotations

import asyncio
import json
import time

import qc_worker


def burn_cpu(seconds: float) -> None:
    """Spin on the CPU for `seconds` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def cpu_task(message: qc_worker.Message) -> None:
    burn_cpu(float(json.loads(message.data)["cpu_seconds"]))


async def noop_task(message: qc_worker.Message) -> None:
    return None


async def sleepy_task(message: qc_worker.Message) -> None:
    await asyncio.sleep(1.0)
