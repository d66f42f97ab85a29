"""The user's API: a task is a function referenced as "package.module:function", options by decorator.

    import qc_worker

    @qc_worker.task(time_limit_seconds=30, max_delivery_attempts=5)
    def resize(message: qc_worker.Message) -> None: ...        # CPU-bound: runs in the process pool

    @qc_worker.task(time_limit_seconds=10)
    async def notify(message: qc_worker.Message) -> None: ...   # I/O-bound: runs on the event loop

    @qc_worker.task(batch_size=500, batch_max_wait_seconds=2)
    def bulk_insert(messages: list[qc_worker.Message]) -> None: ...  # one call per batch

    @qc_worker.task(max_messages_per_second=20)
    def call_api(message: qc_worker.Message) -> None: ...    # at most 20 a second in this worker

`max_messages_per_second` limits one worker; the fleet's limit is `spec.worker.maxMessagesPerSecond`,
divided among the pods by the operator. Where both are set, the smaller one holds (`qc_worker.throttle`).

A task succeeds by returning; raising (or running past its time limit) fails the message, which is retried
and dead-lettered after `max_delivery_attempts`. Raising `qc_worker.MalformedMessage` dead-letters at once.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

TASK_OPTIONS_ATTRIBUTE = "__qc_task_options__"
BATCH_MAX_WAIT_SECONDS = 1.0  # a batch task's default: how long a partial batch waits for more
ExecutionKind = Literal["process", "async"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TaskOptions:
    """Per-task options; each None falls back to the worker's settings."""

    time_limit_seconds: float | None = None
    max_delivery_attempts: int | None = None
    batch_size: int | None = None  # set: the function takes list[Message]
    batch_max_wait_seconds: float = BATCH_MAX_WAIT_SECONDS
    max_messages_per_second: float | None = None  # set: task starts in this worker are limited to it


def task(
    *,
    time_limit_seconds: float | None = None,
    max_delivery_attempts: int | None = None,
    batch_size: int | None = None,
    batch_max_wait_seconds: float = BATCH_MAX_WAIT_SECONDS,
    max_messages_per_second: float | None = None,
) -> Callable[[F], F]:
    """Attach options to a task function. The function itself is returned, so it stays picklable by name."""
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if max_messages_per_second is not None and not max_messages_per_second > 0:
        raise ValueError("max_messages_per_second must be positive")
    options = TaskOptions(
        time_limit_seconds, max_delivery_attempts, batch_size, batch_max_wait_seconds, max_messages_per_second
    )

    def decorate(function: F) -> F:
        setattr(function, TASK_OPTIONS_ATTRIBUTE, options)
        return function

    return decorate


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the reference, "module:function": the `task` label of the metrics
    function: Callable[..., Any]
    kind: ExecutionKind
    options: TaskOptions

    @property
    def is_batch(self) -> bool:
        return self.options.batch_size is not None


class TaskLoadError(ValueError):
    """The task reference does not name an importable function."""


def load_task(reference: str) -> TaskSpec:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise TaskLoadError(f"task {reference!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TaskLoadError(f"cannot import {module_name!r} for task {reference!r}: {error}") from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TaskLoadError(f"{module_name!r} has no function {attribute!r}")
    options = getattr(function, TASK_OPTIONS_ATTRIBUTE, TaskOptions())
    kind: ExecutionKind = "async" if inspect.iscoroutinefunction(function) else "process"
    return TaskSpec(reference, function, kind, options)


@dataclass(frozen=True)
class TaskLimits:
    """What the runtime enforces for a task: its own options where set, the worker's settings otherwise."""

    time_limit_seconds: float
    max_delivery_attempts: int


def resolve_limits(
    options: TaskOptions, default_time_limit_seconds: float, default_max_delivery_attempts: int
) -> TaskLimits:
    """The one place a task's unset options fall back to the worker's settings (`Runtime` calls it)."""
    return TaskLimits(
        time_limit_seconds=options.time_limit_seconds or default_time_limit_seconds,
        max_delivery_attempts=options.max_delivery_attempts or default_max_delivery_attempts,
    )
