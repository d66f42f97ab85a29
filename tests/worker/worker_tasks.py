"""Task functions the worker tests run, in-process and in real `qc-worker` subprocesses.

Each message body is JSON: {"id": ..., "sleep": seconds, "fail": "never"|"always"|"crash"}. A finished
task appends its id to a file under $QC_TEST_RECORDS (one O_APPEND line per completion), so a test can
tell processed-at-least-once from lost, and count duplicates.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import qc_worker

RECORDS_DIR_ENV = "QC_TEST_RECORDS"  # the tests' own variable, not the worker's: where completions go
DOWNSTREAM_FLAG_ENV = "QC_TEST_DOWNSTREAM_DOWN"  # a file: while it exists, `downstream_async` fails


def _record(message_id: str) -> None:
    directory = os.environ.get(RECORDS_DIR_ENV)
    if directory:
        fd = os.open(Path(directory) / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{message_id}\n".encode())
        finally:
            os.close(fd)


def _run(message: qc_worker.Message) -> str:
    body = message.json()
    behaviour = body.get("fail", "never")
    if behaviour == "crash":
        os._exit(13)
    time.sleep(float(body.get("sleep", 0)))
    if behaviour == "always":
        raise RuntimeError(f"task for {body['id']} failed on purpose")
    return str(body["id"])


@qc_worker.task(time_limit_seconds=60)
def work(message: qc_worker.Message) -> None:
    """CPU/blocking work in the process pool."""
    _record(_run(message))


@qc_worker.task(time_limit_seconds=1, max_delivery_attempts=2)
def stuck(message: qc_worker.Message) -> None:
    """Never finishes: only the time limit ends it."""
    while True:
        time.sleep(1)


async def work_async(message: qc_worker.Message) -> None:
    body = message.json()
    await asyncio.sleep(float(body.get("sleep", 0)))
    if body.get("fail") == "always":
        raise RuntimeError("failed on purpose")
    _record(str(body["id"]))


async def noop_async(message: qc_worker.Message) -> None:
    return None


@qc_worker.task(batch_size=10, batch_max_wait_seconds=0.2)
async def bulk(messages: list[qc_worker.Message]) -> None:
    bodies = [m.json() for m in messages]
    if any(b.get("fail") == "always" for b in bodies):
        raise RuntimeError("one bad row fails the whole bulk write")
    for body in bodies:
        _record(f"{body['id']}@batch{len(bodies)}")


async def kill_worker_async(message: qc_worker.Message) -> None:
    """An `async def` task whose "crash" body kills the whole worker, as a segfault in a C extension would."""
    body = message.json()
    if body.get("fail") == "crash":
        os._exit(11)
    await asyncio.sleep(float(body.get("sleep", 0)))
    _record(str(body["id"]))


@qc_worker.task(max_delivery_attempts=2)
async def fail_twice_async(message: qc_worker.Message) -> None:
    """Raises for "always" bodies, so a message is retried once and then dead-lettered."""
    body = message.json()
    if body.get("fail") == "always":
        raise RuntimeError("failed on purpose")
    _record(str(body["id"]))


async def fail_with_detail(message: qc_worker.Message) -> None:
    """Raises with the body's "detail" as the error text (a long, multi-byte dead-letter detail)."""
    raise RuntimeError(message.json().get("detail", ""))


@qc_worker.task(max_messages_per_second=5)
async def limited_async(message: qc_worker.Message) -> None:
    """At most 5 starts a second in one worker, whatever its share of a fleet's limit."""
    await asyncio.sleep(float(message.json().get("sleep", 0)))
    _record(str(message.json()["id"]))


async def downstream_async(message: qc_worker.Message) -> None:
    """A task whose downstream is down while the flag file exists: it raises, as a refused write would."""
    flag = os.environ.get(DOWNSTREAM_FLAG_ENV)
    await asyncio.sleep(float(message.json().get("sleep", 0)))
    if flag and os.path.exists(flag):  # noqa: ASYNC240 (a stat of a local file: no I/O wait worth a thread)
        raise ConnectionRefusedError("the downstream refused the write")
    _record(str(message.json()["id"]))


async def stamped_async(message: qc_worker.Message) -> None:
    """Records "<id> <unix time>" when it finishes: tests count completions over time windows."""
    await asyncio.sleep(float(message.json().get("sleep", 0)))
    _record(f"{message.json()['id']} {time.time():.3f}")


_leaked: list[bytes] = []  # what `leak` never gives back, for as long as its process lives


@qc_worker.task(time_limit_seconds=60)
def leak(message: qc_worker.Message) -> None:
    """Leaks `leak_mib` MiB (written, so resident) per task and records the task under its process id."""
    body = message.json()
    _leaked.append(b"\x01" * (int(body.get("leak_mib", 0)) << 20))
    time.sleep(float(body.get("sleep", 0)))
    _record(str(body["id"]))


@qc_worker.task(time_limit_seconds=60)
def report_imports(message: qc_worker.Message) -> None:
    """Records which of the worker's heavy libraries this pool process has loaded (none, from the zygote)."""
    import sys

    heavy = ("aio_pika", "grpc", "google.cloud.pubsub_v1", "prometheus_client", "qc_worker.runtime")
    _record(" ".join(name for name in heavy if name in sys.modules) or "none")
