"""The runtime under a rate limit (`qc_worker.throttle`): tokens before each start, the share file followed
without a restart, and a window shrunk to what the rate needs so the rest stays in the broker.

On looptime's fake loop clock: the times asserted are exact and take no real time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import worker_tasks

from qc_worker.executors import AsyncExecutor
from qc_worker.metrics import WorkerMetrics
from qc_worker.runtime import Runtime
from qc_worker.settings import WorkerSettings
from qc_worker.sources.memory import MemorySource
from qc_worker.tasks import load_task
from tests.worker.test_window_and_settlement import body, run_until, sample

pytestmark = pytest.mark.looptime


def make_runtime(task_ref: str, source: MemorySource, **overrides: Any) -> tuple[Runtime, WorkerMetrics]:
    settings = WorkerSettings(task=task_ref, source="rabbitmq", concurrency=8, **overrides)
    metrics = WorkerMetrics("memory", task_ref, 8)
    return Runtime(settings, load_task(task_ref), source, AsyncExecutor(), metrics), metrics


def track_starts(monkeypatch: pytest.MonkeyPatch, task_seconds: float) -> list[float]:
    starts: list[float] = []

    async def tracked(message: Any) -> None:
        starts.append(asyncio.get_running_loop().time())
        await asyncio.sleep(task_seconds)

    monkeypatch.setattr(worker_tasks, "noop_async", tracked)
    return starts


async def test_a_task_limit_spaces_the_starts_and_holds_only_what_the_rate_needs() -> None:
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:limited_async", source)
    for i in range(30):
        source.put(body(i, sleep=0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    peak_held = 0

    def done() -> bool:
        nonlocal peak_held
        peak_held = max(peak_held, len(runtime._held))
        return len(source.acked) == 30

    await run_until(runtime, done, timeout_seconds=60)
    # 5 a second from an empty bucket: the 30th starts at 6 s, acked 0.2 s later.
    assert loop.time() - started == pytest.approx(6.2, abs=0.1)
    # 5/s x (0.2 s running + 1 s ahead) = 6 of the 8 slots; the other messages stay in the broker.
    assert peak_held == 6
    assert sample(metrics, "qc_worker_rate_share_messages_per_second") == 0  # no fleet share: a task limit


async def test_the_share_file_is_followed_while_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    starts = track_starts(monkeypatch, task_seconds=0.1)
    share = tmp_path / "messages-per-second"
    share.write_text("10\n")
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:noop_async", source, rate_limit_file=str(share))
    for i in range(200):
        source.put(body(i))
    loop = asyncio.get_running_loop()
    begin = loop.time()
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(5)
    assert sample(metrics, "qc_worker_rate_share_messages_per_second") == 10
    share.write_text("2\n")  # the kubelet's swap, as far as the worker can tell: new content, new mtime
    await asyncio.sleep(10)
    assert sample(metrics, "qc_worker_rate_share_messages_per_second") == 2
    held_at_2 = len(runtime._held)
    share.write_text("")  # the limit lifted
    await asyncio.sleep(3)
    runtime.request_stop()
    await asyncio.wait_for(running, 30)

    def count(since: float, until: float) -> int:
        return sum(1 for t in starts if begin + since <= t < begin + until)

    assert count(1, 5) == 40  # 10/s
    assert count(7, 15) == 16  # 2/s once the file changed (read within the poll second)
    assert held_at_2 <= 3  # 2/s x (0.1 s + 1 s): the window shrank with the share
    assert len(source.acked) == 200  # no limit: the rest at once


async def test_a_bad_share_file_keeps_the_share_it_had(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    track_starts(monkeypatch, task_seconds=0.0)
    share = tmp_path / "messages-per-second"
    share.write_text("4")
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:noop_async", source, rate_limit_file=str(share))
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(1.5)
    share.write_text("-3")
    await asyncio.sleep(2)
    assert runtime.throttle.rate_per_second == 4
    assert sample(metrics, "qc_worker_rate_share_messages_per_second") == 4
    runtime.request_stop()
    await asyncio.wait_for(running, 30)


async def test_messages_waiting_for_a_token_are_released_at_once_on_stop(tmp_path: Path) -> None:
    share = tmp_path / "messages-per-second"
    share.write_text("0.1")  # one start every 10 s
    source = MemorySource()
    runtime, metrics = make_runtime("worker_tasks:work_async", source, rate_limit_file=str(share))
    for i in range(3):
        source.put(body(i))
    running = asyncio.create_task(runtime.run())
    await asyncio.sleep(1)
    assert len(runtime._held) == 1  # 0.1/s needs one message at a time
    assert sample(metrics, "qc_worker_busy_ratio") == 0  # waiting for a token is not busy
    loop = asyncio.get_running_loop()
    stopped = loop.time()
    runtime.request_stop()
    await asyncio.wait_for(running, 30)
    assert loop.time() - stopped < 0.5
    assert len(source.released) == 1
    assert source.acked == []
