"""Running real `qc-worker` processes in tests, and reading what they did."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from devstack.process import free_port

QC_WORKER = str(Path(sys.executable).with_name("qc-worker"))


class WorkerProcess:
    """A real `qc-worker` in its own process group (so a kill takes its pool processes too, like a pod)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.metrics_port = free_port()
        self.log_path = log_path
        full_env = {**os.environ, **env, "QC_METRICS_PORT": str(self.metrics_port)}
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [QC_WORKER], env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def metrics(self) -> dict[str, float]:
        """name{labels} -> value, from the worker's own /metrics endpoint."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def metric(self, name: str, **labels: str) -> float:
        return sum(
            value
            for key, value in self.metrics().items()
            if key.split("{")[0] == name and all(f'{k}="{v}"' in key for k, v in labels.items())
        )

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


def wait_until(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(0.1)


def completions(records: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in records.glob("*.log"):
        counts.update(line for line in path.read_text().splitlines() if line)
    return counts


def body(message_id: str, **extra: object) -> bytes:
    return json.dumps({"id": message_id, **extra}).encode()
