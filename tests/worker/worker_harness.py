"""Running real `qc-worker` processes in tests, and reading what they did.

Used by tests/worker/conftest.py (the `start_worker` fixture) and the tests against real brokers;
`restart_until_poison_dead_lettered` is what a Deployment does with a worker a poison message kills. The
task module the tests name, `worker_tasks`, is found by the child through PYTHONPATH, as a user's task
module would be in its image.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from devstack import scrape
from devstack.polling import wait_until
from devstack.process import free_port
from qc_common import api, worker_env

QC_WORKER = str(Path(sys.executable).with_name("qc-worker"))
TASKS_DIR = Path(__file__).resolve().parent  # holds worker_tasks, the task module the tests name


class WorkerProcess:
    """A real `qc-worker` in its own process group (so a kill takes its pool processes too, like a pod)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.metrics_port = free_port()
        self.log_path = log_path
        python_path = os.pathsep.join(filter(None, [str(TASKS_DIR), os.environ.get("PYTHONPATH")]))
        full_env = {
            **os.environ,
            **env,
            worker_env.METRICS_PORT: str(self.metrics_port),
            "PYTHONPATH": python_path,
        }
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [QC_WORKER], env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def metric(self, name: str, **labels: str) -> float:
        """The sum of sample `name` over the series with these labels, from the worker's own /metrics."""
        text = scrape.fetch(f"http://127.0.0.1:{self.metrics_port}{api.WORKER_METRICS_PATH}")
        return scrape.sample_sum(text, name, **labels)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill_hard(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=60)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill_hard()


def run_to_exit(env: dict[str, str], log_path: Path, timeout_seconds: float) -> tuple[int, str]:
    """A `qc-worker` expected to stop by itself (bad settings, a broken pool): its exit code and output.
    Killed if still running after `timeout_seconds` (then the wait raises)."""
    worker = WorkerProcess(env, log_path)
    try:
        code = worker.popen.wait(timeout=timeout_seconds)
    finally:
        worker.stop()
    return code, log_path.read_text()


def restart_until_poison_dead_lettered(
    env: dict[str, str],
    log_dir: Path,
    poison_dead_lettered: Callable[[], bool],
    healthy_done: Callable[[], bool],
    max_crashes: int,
    crash_timeout_seconds: float = 60,
) -> int:
    """Start a worker again whenever it dies (as its Deployment would) until the poison message that kills
    it is dead-lettered while a worker lives and the healthy messages are done; returns how many workers
    died. More than `max_crashes` deaths fail the test: the poison was delivered more often than its
    attempts."""
    crashes = 0
    while True:
        worker = WorkerProcess(env, log_dir / f"worker-{crashes}.log")
        try:

            def died_or_dead_lettered(w: WorkerProcess = worker) -> bool:
                return w.popen.poll() is not None or poison_dead_lettered()

            wait_until(died_or_dead_lettered, crash_timeout_seconds, "a crash or the poison dead-lettered")
            if worker.popen.poll() is None:
                wait_until(healthy_done, 60, "every healthy message done")
                return crashes
        finally:
            worker.stop()
        crashes += 1
        assert crashes <= max_crashes, "the poison was delivered more often than its attempts"


def completions(records: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in records.glob("*.log"):
        counts.update(line for line in path.read_text().splitlines() if line)
    return counts


def body(message_id: str, **extra: object) -> bytes:
    return json.dumps({"id": message_id, **extra}).encode()
