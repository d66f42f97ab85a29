"""Where a task runs: a pool of long-lived processes (CPU-bound work) or the event loop (async work).

Both turn the outcomes the runtime cares about into two exceptions: `TimeLimitExceeded` (the task was
stopped at its time limit — pebble kills the process and starts a fresh one) and `TaskCrashed` (the
process died under the task: a segfault, os._exit, the OOM killer). Anything the task raised is re-raised.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
from collections.abc import Callable
from typing import Any, Protocol

import pebble


class TimeLimitExceeded(Exception):
    """The task ran past its time limit and was stopped."""


class TaskCrashed(Exception):
    """The process running the task died."""


class Executor(Protocol):
    async def run(self, function: Callable[..., Any], argument: Any, time_limit_seconds: float) -> None: ...

    async def stop_all(self) -> None:
        """Stop every running task now; returns once nothing of them can run any more."""
        ...

    def close(self) -> None: ...


class ProcessExecutor:
    """A pebble.ProcessPool of long-lived processes; a task past its limit has its process killed."""

    def __init__(self, processes: int) -> None:
        # spawn, not fork: the parent runs gRPC and asyncio threads, which must not be forked mid-flight.
        self._pool = pebble.ProcessPool(max_workers=processes, context=multiprocessing.get_context("spawn"))
        self._closed = False

    async def run(self, function: Callable[..., Any], argument: Any, time_limit_seconds: float) -> None:
        future = self._pool.schedule(function, args=(argument,), timeout=time_limit_seconds)
        try:
            # Cancelling this coroutine cancels the pebble future, which kills the process running it.
            await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError as error:
            raise TimeLimitExceeded(f"stopped after the {time_limit_seconds:g} s time limit") from error
        except pebble.ProcessExpired as error:
            raise TaskCrashed(f"the task's process died (exit code {error.exitcode})") from error

    async def stop_all(self) -> None:
        # The pool would stop its processes one at a time (SIGTERM, up to 3 s each, then SIGKILL): kill them
        # all at once instead, then let the pool join them, so the drain ends within the pod's grace period.
        for process in multiprocessing.active_children():
            with contextlib.suppress(OSError):
                process.kill()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.stop()  # type: ignore[no-untyped-call]
        self._pool.join()


class AsyncExecutor:
    """Runs `async def` tasks on the worker's own event loop; cancellation stops them at the time limit."""

    async def run(self, function: Callable[..., Any], argument: Any, time_limit_seconds: float) -> None:
        # asyncio.timeout, not wait_for: no extra task per message on Python 3.11.
        limit = asyncio.timeout(time_limit_seconds)
        try:
            async with limit:
                await function(argument)
        except TimeoutError as error:
            if not limit.expired():  # the task's own TimeoutError is a task failure, not our time limit
                raise
            raise TimeLimitExceeded(f"stopped after the {time_limit_seconds:g} s time limit") from error

    async def stop_all(self) -> None:
        return None  # the tasks run on this loop: cancelling them (the runtime does) ends them

    def close(self) -> None:
        return None
