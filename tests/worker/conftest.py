"""Worker tests: the task module is importable here and in `qc-worker` subprocesses (and their pools)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
# Spawned pool processes and qc-worker subprocesses find worker_tasks through PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))

from worker_harness import WorkerProcess, wait_until  # noqa: E402


@pytest.fixture
def records(tmp_path: Path) -> Path:
    directory = tmp_path / "records"
    directory.mkdir()
    return directory


@pytest.fixture
def start_worker(tmp_path: Path, records: Path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(
            {"QC_TEST_RECORDS": str(records), **env}, tmp_path / f"worker-{len(workers)}.log"
        )
        workers.append(worker)
        wait_until(lambda: worker.ready() or worker.popen.poll() is not None, 60, "the worker to be ready")
        assert worker.popen.poll() is None, f"qc-worker exited: {worker.log_path.read_text()[-3000:]}"
        return worker

    yield start
    for worker in workers:
        worker.stop()
