"""The pool's zygote dies (`executors.ProcessExecutor`, `zygote_client`): a task waiting for a fork fails as
crashed and the next task gets a new zygote; killed under a real `qc-worker` on the real RabbitMQ, every
message is still processed exactly once and the worker goes on; zygotes that die as they start (the task's
module does not import there) stop the worker with one clear line and hand the messages back unspent."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import worker_tasks
import zygote_breaker

from devstack.polling import wait_until, wait_until_async
from devstack.services import RabbitMQ
from qc_common import worker_env
from qc_worker.executors import MAX_QUICK_DEATHS, PoolBroken, ProcessExecutor, TaskCrashed
from qc_worker.messages import Message
from tests.worker.test_rabbitmq_worker import publish
from tests.worker.worker_harness import WorkerProcess, body, completions, run_to_exit


def message(message_id: str, **extra: object) -> Message:
    return Message(data=body(message_id, **extra), message_id=message_id)


async def test_a_task_waiting_for_a_fork_when_the_zygote_dies_crashes_and_the_next_gets_a_new_zygote(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(worker_tasks.RECORDS_DIR_ENV, str(records))
    executor = ProcessExecutor(1, max_tasks_per_child=1)  # every task forks: none is left idle
    try:
        await executor.run(worker_tasks.work, message("first"), 30)
        first_zygote = executor.zygote_pid
        assert first_zygote is not None
        os.kill(first_zygote, signal.SIGSTOP)  # it takes the fork request but never answers it
        waiting = asyncio.create_task(executor.run(worker_tasks.work, message("lost"), 30))

        async def fork_requested() -> bool:  # the request is sent under the zygote's fork lock
            current = executor._zygote
            return current is not None and current._fork_lock.locked()

        await wait_until_async(fork_requested, 30, "the task to wait for its fork")
        os.kill(first_zygote, signal.SIGKILL)
        with pytest.raises(TaskCrashed, match=r"zygote died \(exit code -9\) before it forked"):
            await asyncio.wait_for(waiting, 30)
        await executor.run(worker_tasks.work, message("after"), 30)
        assert executor.zygote_pid not in (None, first_zygote)
        assert executor.zygote_deaths == 1
        assert executor.broken is None
    finally:
        executor.close()
    assert sorted(completions(records)) == ["after", "first"]


async def test_zygotes_that_die_as_they_start_break_the_pool_once_and_the_task_waits_for_the_stop() -> None:
    executor = ProcessExecutor(2)
    reasons: list[str] = []
    executor.on_broken = reasons.append
    try:
        running = asyncio.create_task(executor.run(zygote_breaker.work, message("m"), 30))

        async def broken() -> bool:
            return bool(reasons)

        await wait_until_async(broken, 120, "the pool to break")
        [reason] = reasons
        assert f"{MAX_QUICK_DEATHS} zygotes in a row died" in reason
        assert "importing 'zygote_breaker'" in reason
        # The message is not at fault: its task neither ran nor failed; it waits for the worker's stop.
        await asyncio.sleep(0.5)
        assert not running.done()
        await executor.stop_all()
        with pytest.raises(PoolBroken):
            await asyncio.wait_for(running, 10)
        with pytest.raises(PoolBroken):  # no more zygotes are started
            await executor.start("zygote_breaker")
    finally:
        executor.close()


def zygote_of(worker: WorkerProcess) -> int | None:
    """The pid of the worker's zygote (`python -m qc_worker.zygote`, a child of the worker)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == worker.popen.pid and b"qc_worker.zygote" in command:
            return int(entry.name)
    return None


def rabbitmq_worker_env(rabbitmq: RabbitMQ, queue: str, task: str, **extra: str) -> dict[str, str]:
    return {
        worker_env.SOURCE: "rabbitmq",
        worker_env.RABBITMQ_URL: rabbitmq.amqp_url,
        worker_env.RABBITMQ_QUEUE: queue,
        worker_env.TASK: task,
        worker_env.CONCURRENCY: "4",
        **extra,
    }


def test_a_killed_zygote_is_replaced_and_every_message_is_processed_exactly_once(
    rabbitmq: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"zygote-{uuid.uuid4().hex[:8]}"
    ids = [f"m{i}" for i in range(80)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, sleep=0.05) for i in ids]))
    # One task per process: the zygote forks all the time, so the kill finds forks in flight.
    env = rabbitmq_worker_env(rabbitmq, queue, "worker_tasks:work", **{worker_env.MAX_TASKS_PER_CHILD: "1"})
    worker = start_worker(**env)
    wait_until(lambda: len(completions(records)) >= 10, 60, "the first tasks to finish")
    first_zygote = wait_until(lambda: zygote_of(worker), 30, "the worker's zygote")
    os.kill(first_zygote, signal.SIGKILL)
    wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message to be processed")
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")
    counts = completions(records)
    assert max(counts.values()) == 1, f"a message ran twice: {counts.most_common(3)}"
    assert worker.popen.poll() is None
    assert worker.metric("qc_worker_messages_dead_lettered_total") == 0
    log = worker.log_path.read_text()
    assert log.count("the pool's zygote died; the next task starts a new one") == 1
    assert '"exit_code": -9' in log
    # The worker goes on, with a new zygote.
    later = [f"later{i}" for i in range(10)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i) for i in later]))
    wait_until(lambda: set(later) <= set(completions(records)), 60, "the later messages to be processed")
    assert zygote_of(worker) not in (None, first_zygote)
    assert worker.ready()


def test_a_worker_whose_zygotes_die_as_they_start_exits_with_one_line_and_spends_no_attempt(
    rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    queue = f"broken-{uuid.uuid4().hex[:8]}"
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body("m")]))
    env = rabbitmq_worker_env(rabbitmq, queue, "zygote_breaker:work", **{worker_env.DRAIN_GRACE_SECONDS: "1"})
    code, log = run_to_exit(env, tmp_path / "worker.log", 120)
    assert code == 1, log
    [stopped] = [line for line in log.splitlines() if '"stopped: the pool cannot run tasks' in line]
    assert "importing 'zygote_breaker'" in stopped
    assert '"task failed"' not in log  # released, not failed: no attempt spent
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 1, 30, "the message back in the queue")
