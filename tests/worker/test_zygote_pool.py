"""The zygote-forked pool (`qc_worker.executors.ProcessExecutor`, `qc_worker.zygote`) on its own: what a
pool process has loaded, when it is replaced, and the exit code of one that died under its task."""

from __future__ import annotations

from pathlib import Path

import pytest
import worker_tasks

from qc_worker import zygote
from qc_worker.executors import ProcessExecutor, TaskCrashed
from qc_worker.messages import Message
from tests.worker.worker_harness import body, completions


@pytest.mark.parametrize(
    ("tasks_done", "resident_mib", "max_tasks", "max_memory_mib", "expected"),
    [
        (1, 500.0, 0, 0, False),  # no limits: never
        (2, 10.0, 3, 0, False),
        (3, 10.0, 3, 0, True),  # the task that reaches N
        (1, 64.0, 0, 64, False),  # at the limit is not above it
        (1, 64.5, 0, 64, True),
        (1, 70.0, 100, 64, True),  # whichever comes first
    ],
)
def test_a_process_is_recycled_after_n_tasks_or_above_m_mib(
    tasks_done: int, resident_mib: float, max_tasks: int, max_memory_mib: int, expected: bool
) -> None:
    recycle = zygote.should_recycle(tasks_done, max_tasks, max_memory_mib, lambda: resident_mib)
    assert recycle is expected


def test_the_resident_size_is_read_only_under_a_memory_limit() -> None:
    reads: list[int] = []

    def resident() -> float:
        reads.append(1)
        return 500.0

    assert zygote.should_recycle(1, 0, 0, resident) is False
    assert zygote.should_recycle(1, 100, 0, resident) is False
    assert reads == []
    assert zygote.should_recycle(1, 0, 64, resident) is True
    assert reads == [1]
    assert zygote.resident_mib() > 1.0  # this process's own, from /proc/self/statm


def message(message_id: str, **extra: object) -> Message:
    return Message(data=body(message_id, **extra), message_id=message_id)


def tasks_per_pid(records: Path) -> list[int]:
    return sorted(len(path.read_text().split()) for path in records.glob("*.log"))


async def test_pool_processes_load_only_the_task_module_not_the_workers_libraries(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aio_pika  # noqa: F401 (loaded here, in the worker's process, as qc-worker does)

    monkeypatch.setenv(worker_tasks.RECORDS_DIR_ENV, str(records))
    executor = ProcessExecutor(2)
    try:
        await executor.run(worker_tasks.report_imports, message("m"), 30)
    finally:
        executor.close()
    assert set(completions(records)) == {"none"}


async def test_recycled_processes_are_replaced_by_new_pids_and_a_crash_reports_its_exit_code(
    records: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(worker_tasks.RECORDS_DIR_ENV, str(records))
    executor = ProcessExecutor(1, max_tasks_per_child=2)
    try:
        for i in range(6):
            await executor.run(worker_tasks.work, message(f"m{i}"), 30)
        with pytest.raises(TaskCrashed, match="exit code 13"):
            await executor.run(worker_tasks.work, message("c", fail="crash"), 30)
        await executor.run(worker_tasks.work, message("after"), 30)
    finally:
        executor.close()
    assert tasks_per_pid(records) == [1, 2, 2, 2]  # three processes of 2 tasks each, then one after the crash
    assert executor.recycled == 3
