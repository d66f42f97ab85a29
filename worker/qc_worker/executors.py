"""Where a task runs: a pool of long-lived processes (CPU-bound work) or the event loop (async work).

Invoked from `qc_worker.runtime` (one `run` per message or batch) and built by `qc_worker.__main__`.
Both executors turn the outcomes the runtime cares about into two exceptions: `TimeLimitExceeded` (the
task was stopped at its time limit: its process is killed and another takes its slot) and `TaskCrashed`
(the process died under the task: a segfault, os._exit, the OOM killer). Anything the task raised is
re-raised.

The pool's processes are forked by `qc_worker.zygote`, a small interpreter that imported only the task's
module, so a slot costs the pages a task dirties, not a fresh interpreter with the worker's libraries
(`qc_worker.zygote_client` is our end of it). A zygote that dies is replaced; zygotes that keep dying at
once break the pool (`PoolBroken`), and `qc_worker.__main__` stops the worker with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import time
import typing
from collections.abc import Callable
from typing import Any, Protocol

from qc_worker import zygote
from qc_worker.zygote_client import Zygote, ZygoteFailed

log = logging.getLogger(__name__)
ZYGOTE_STABLE_SECONDS = 10.0  # a zygote that dies younger than this died "at once" (see MAX_QUICK_DEATHS)
MAX_QUICK_DEATHS = 3  # zygotes dying at once in a row: the pool is broken and the worker stops


class TimeLimitExceeded(Exception):
    """The task ran past its time limit and was stopped."""


class TaskCrashed(Exception):
    """The process running the task died."""


class PoolBroken(TaskCrashed):
    """The pool's zygote keeps dying at once (its import of the task's module fails, ...): no task can run."""


class Executor(Protocol):
    async def run(self, function: Callable[..., Any], argument: Any, time_limit_seconds: float) -> None: ...

    async def stop_all(self) -> None:
        """Stop every running task now; returns once nothing of them can run any more."""
        ...

    def close(self) -> None: ...


class TaskChannel(asyncio.Protocol):
    """Our end of a pool process's socket: a task's frame out, its answer's frame back (`zygote.HEADER`
    and a pickle each way). A protocol, not a stream pair: the answer is cut from the bytes as they arrive,
    with no reads to schedule per frame; this runs between one task's end and the next one's start."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._answer: asyncio.Future[bytes] | None = None
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = typing.cast(asyncio.Transport, transport)  # uvloop's does not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._received += data
        if len(self._received) < zygote.HEADER.size:
            return
        (size,) = zygote.HEADER.unpack_from(self._received)
        end = zygote.HEADER.size + size
        answer = self._answer
        if len(self._received) >= end and answer is not None and not answer.done():
            answer.set_result(bytes(self._received[zygote.HEADER.size : end]))
            del self._received[:end]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        answer = self._answer
        if answer is not None and not answer.done():
            # The process died under its task (or was killed): the runtime reads this as a crash.
            answer.set_exception(asyncio.IncompleteReadError(bytes(self._received), None))

    async def exchange(self, frame: bytes) -> bytes:
        """Send one frame; the answer's payload."""
        if self._lost or self._transport is None:
            raise ConnectionError("the pool process's socket is closed")
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(frame)
        try:
            return await self._answer
        finally:
            self._answer = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclasses.dataclass(eq=False)
class PoolProcess:
    """One forked process, the zygote that forked it, and the worker's end of its socket."""

    pid: int
    zygote: Zygote
    channel: TaskChannel
    tasks_done: int = 0

    async def call(self, function: Callable[..., Any], argument: Any) -> tuple[bool, Any, bool]:
        """Run one task there: (succeeded, its result or exception, the process exits now to be replaced)."""
        payload = pickle.dumps((function, argument), protocol=pickle.HIGHEST_PROTOCOL)
        answer = await self.channel.exchange(zygote.HEADER.pack(len(payload)) + payload)
        ok, value, recycle = pickle.loads(answer)
        self.tasks_done += 1
        return bool(ok), value, bool(recycle)

    def close(self) -> None:
        """Our end of its socket closed: an idle process reads the end of file and exits."""
        self.channel.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.close()


class ProcessExecutor:
    """Long-lived processes forked from a zygote, started on the first task; a task past its time limit
    has its process killed.

    `max_tasks_per_child` / `max_memory_per_child_mib` (0: never) replace a process after its task once it
    has run that many tasks or holds more resident memory, as Celery's prefork pool does.

    A zygote that dies (killed, OOM) is replaced on the next task; the tasks waiting for it to fork fail as
    crashed (retried as any crash is), and the processes it forked finish their tasks, then go. Zygotes
    dying at once `MAX_QUICK_DEATHS` times in a row break the pool: `on_broken` (the runtime's stop) gets
    the reason, and the tasks waiting for a process wait for the drain to stop them, which releases their
    messages: they are not at fault, so no attempt is spent on them."""

    def __init__(
        self, processes: int, max_tasks_per_child: int = 0, max_memory_per_child_mib: int = 0
    ) -> None:
        self._limits = (max_tasks_per_child, max_memory_per_child_mib)
        self._slots = asyncio.Semaphore(processes)
        self._idle: list[PoolProcess] = []
        self._busy: set[PoolProcess] = set()
        self._zygote: Zygote | None = None
        self._start_lock = asyncio.Lock()
        self._stopped = asyncio.Event()  # stop_all or close: a task waiting on a broken pool gives up
        self._closed = False
        self._quick_deaths = 0
        self.broken: str | None = None  # why the pool cannot run tasks, once it cannot
        self.on_broken: Callable[[str], None] = lambda reason: None
        self.recycled = 0  # processes replaced by a limit (read by tests and the benchmark)
        self.zygote_deaths = 0  # zygotes that died without our asking (read by tests)

    @property
    def zygote_pid(self) -> int | None:
        return None if self._zygote is None else self._zygote.process.pid

    def pids(self) -> list[int]:
        """The pool's processes now, idle and busy."""
        return [p.pid for p in self._idle] + [p.pid for p in self._busy]

    async def start(self, module: str) -> Zygote:
        """The live zygote, started if there is none (importing `module`, the task's, once for every process
        it will fork); PoolBroken once zygotes keep dying at once."""
        live = self._zygote
        if live is not None and not live.died.done():
            return live  # every task after the first: no lock to take
        async with self._start_lock:  # the first tasks arrive together; one zygote serves them all
            while self._zygote is None or self._zygote.died.done():
                if self.broken is not None:
                    raise PoolBroken(self.broken)
                started = time.monotonic()
                try:
                    self._zygote = await Zygote.start(module, self._limits, self._is_busy, self._zygote_died)
                except ZygoteFailed as error:
                    log.warning("%s", error)
                    self._count_death(str(error), time.monotonic() - started)
            return self._zygote

    def _is_busy(self, pid: int) -> bool:
        return any(p.pid == pid for p in self._busy)

    def _zygote_died(self, gone: Zygote) -> None:
        code = gone.died.result()
        self.zygote_deaths += 1
        log.warning(
            "the pool's zygote died; the next task starts a new one",
            extra={"exit_code": code, "lived_seconds": round(gone.lived_seconds, 1)},
        )
        # Its idle processes could not report their exit any more: they go (they exit at the end of file).
        for process in [p for p in self._idle if p.zygote is gone]:
            self._idle.remove(process)
            process.close()
        self._count_death(f"the pool's zygote died (exit code {code})", gone.lived_seconds)

    def _count_death(self, what: str, lived_seconds: float) -> None:
        if lived_seconds >= ZYGOTE_STABLE_SECONDS:
            self._quick_deaths = 0
            return
        self._quick_deaths += 1
        if self._quick_deaths >= MAX_QUICK_DEATHS and self.broken is None:
            self.broken = (
                f"the pool cannot run tasks: {self._quick_deaths} zygotes in a row died within "
                f"{ZYGOTE_STABLE_SECONDS:g} s of their start; the last: {what}"
            )
            log.error("%s", self.broken)
            self.on_broken(self.broken)

    async def _fork(self, current: Zygote) -> PoolProcess:
        try:
            pid, ours = await current.fork()
        except ZygoteFailed as error:
            raise TaskCrashed(str(error)) from error
        _, channel = await asyncio.get_running_loop().create_unix_connection(TaskChannel, sock=ours)
        return PoolProcess(pid, current, channel)

    async def run(self, function: Callable[..., Any], argument: Any, time_limit_seconds: float) -> None:
        async with self._slots:
            try:
                current = await self.start(function.__module__)
            except PoolBroken:
                await self._stopped.wait()  # the drain's end: the runtime releases the message
                raise
            process = self._idle.pop() if self._idle else await self._fork(current)
            self._busy.add(process)
            try:
                async with asyncio.timeout(time_limit_seconds) as limit:
                    ok, value, recycle = await process.call(function, argument)
            except TimeoutError as error:
                self._busy.discard(process)
                process.kill()
                if limit.expired():
                    raise TimeLimitExceeded(
                        f"stopped after the {time_limit_seconds:g} s time limit"
                    ) from error
                raise
            except (asyncio.IncompleteReadError, ConnectionError) as error:
                process.zygote.expect_exit(process.pid)
                self._busy.discard(process)
                process.close()
                code = await process.zygote.exit_of(process.pid)
                raise TaskCrashed(f"the task's process died ({code})") from error
            except BaseException:  # cancelled at the drain's end: the process may be mid-task, so it goes
                self._busy.discard(process)
                process.kill()
                raise
            self._busy.discard(process)
            if recycle:  # the process exits after this answer; the next task forks a fresh one
                self.recycled += 1
                process.close()
                log.info("pool process recycled", extra={"pid": process.pid, "tasks": process.tasks_done})
            elif process.zygote.died.done():  # an orphan now: the next task gets one of the new zygote's
                process.close()
            else:
                self._idle.append(process)
        if not ok:
            raise value

    async def stop_all(self) -> None:
        # Every busy process killed at once, and gone before the runtime hands its message back.
        self._stopped.set()
        busy = list(self._busy)
        for process in busy:
            process.zygote.expect_exit(process.pid)
            process.kill()
        await asyncio.gather(*(p.zygote.exit_of(p.pid) for p in busy))
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopped.set()
        for process in self._idle:
            process.close()
        if self._zygote is not None:
            self._zygote.close()


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
