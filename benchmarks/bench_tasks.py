"""Tasks for the worker benchmark, imported as `benchmarks.bench_tasks` by pool processes, `qc-worker` and
(through `benchmarks.celery_app`) Celery's prefork processes, so both sides run the same task module."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import qc_worker

RECORDS_ENV = "BENCH_RECORDS"  # the benchmark's own variable: a directory, one `<pid>.log` per process


def burn_cpu(seconds: float) -> None:
    """Spin on the CPU for `seconds` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def record(line: str) -> None:
    """One O_APPEND line in this process's file under $BENCH_RECORDS (nothing if it is unset)."""
    directory = os.environ.get(RECORDS_ENV)
    if directory:
        fd = os.open(Path(directory) / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


def timed_burn(cpu_seconds: float) -> None:
    """Burn, recording the wall-clock start and end (seconds since the epoch, comparable across processes)."""
    started = time.time()
    burn_cpu(cpu_seconds)
    record(f"{started} {time.time()}")


def hold(sleep_seconds: float) -> None:
    """Occupy a slot: record the start, then sleep (the memory benchmark measures the slots meanwhile)."""
    record(f"{time.time()} 0")
    time.sleep(sleep_seconds)


def cpu_task(message: qc_worker.Message) -> None:
    burn_cpu(float(json.loads(message.data)["cpu_seconds"]))


def timed_cpu_task(message: qc_worker.Message) -> None:
    timed_burn(float(json.loads(message.data)["cpu_seconds"]))


def hold_task(message: qc_worker.Message) -> None:
    hold(float(json.loads(message.data)["sleep_seconds"]))


async def noop_task(message: qc_worker.Message) -> None:
    return None


async def sleepy_task(message: qc_worker.Message) -> None:
    await asyncio.sleep(1.0)
