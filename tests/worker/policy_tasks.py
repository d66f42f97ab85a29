"""Task functions for the Pub/Sub dead-letter policy tests (named "policy_tasks:<function>")."""

from __future__ import annotations

import os
from pathlib import Path

import qc_worker

ATTEMPTS_FILE_ENV = "QC_TEST_ATTEMPTS_FILE"  # the tests' own variable: where each attempt's number goes


def _note_attempt(message: qc_worker.Message) -> None:
    fd = os.open(Path(os.environ[ATTEMPTS_FILE_ENV]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{message.delivery_attempt}\n".encode())
    finally:
        os.close(fd)


async def kills_the_worker(message: qc_worker.Message) -> None:
    """Notes its attempt number, then kills the whole worker, as a segfault in a C extension would."""
    _note_attempt(message)
    os._exit(11)


def kills_its_process(message: qc_worker.Message) -> None:
    """Notes its attempt number, then kills the pool process running it; the worker itself lives on."""
    _note_attempt(message)
    os._exit(13)
