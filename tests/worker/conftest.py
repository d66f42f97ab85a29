"""Worker tests: real `qc-worker` processes started per test, and the records their tasks leave.

`worker_tasks` (the task module the tests name as "worker_tasks:<function>") is importable here through
pytest's `pythonpath` (pyproject.toml), in spawned pool processes because they inherit this process's
sys.path, and in `qc-worker` subprocesses through the PYTHONPATH `worker_harness.WorkerProcess` gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import worker_tasks

from devstack.polling import wait_until
from tests.worker import worker_harness


@pytest.fixture
def records(tmp_path: Path) -> Path:
    directory = tmp_path / "records"
    directory.mkdir()
    return directory


@pytest.fixture
def start_worker(tmp_path: Path, records: Path) -> Iterator[Callable[..., worker_harness.WorkerProcess]]:
    workers: list[worker_harness.WorkerProcess] = []

    def start(**env: str) -> worker_harness.WorkerProcess:
        worker = worker_harness.WorkerProcess(
            {worker_tasks.RECORDS_DIR_ENV: str(records), **env}, tmp_path / f"worker-{len(workers)}.log"
        )
        workers.append(worker)
        wait_until(lambda: worker.ready() or worker.popen.poll() is not None, 60, "the worker to be ready")
        assert worker.popen.poll() is None, f"qc-worker exited: {worker.log_path.read_text()[-3000:]}"
        return worker

    yield start
    for worker in workers:
        worker.stop()
