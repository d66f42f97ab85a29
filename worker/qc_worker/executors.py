"""Where a task runs: a pool of long-lived processes (CPU-bound work) or the event loop (async work).

Invoked from `qc_worker.runtime` (one `run` per message or batch) and built by `qc_worker.__main__`.
Both executors turn the outcomes the runtime cares about into two exceptions: `TimeLimitExceeded` (the
task was stopped at its time limit: its process is killed and another takes its slot) and `TaskCrashed`
(the process died under the task: a segfault, os._exit, the OOM killer). Anything the task raised is
re-raised.

The pool's processes are forked by `qc_worker.zygote`, a small interpreter that imported only the task's
module, so a slot costs the pages a task dirties, not a fresh interpreter with the worker's libraries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any, Protocol

from qc_worker import zygote

log = logging.getLogger(__name__)
ZYGOTE_START_TIMEOUT_SECONDS = 60.0  # importing the task's module in the zygote
EXIT_REPORT_TIMEOUT_SECONDS = 5.0  # from a pool process's end of file to the zygote's report of its exit


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


@dataclasses.dataclass(eq=False)
class PoolProcess:
    """One forked process and the worker's end of its socket."""

    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    tasks_done: int = 0

    async def call(self, function: Callable[..., Any], argument: Any) -> tuple[bool, Any, bool]:
        """Run one task there: (succeeded, its result or exception, the process exits now to be replaced)."""
        payload = pickle.dumps((function, argument), protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(zygote.HEADER.pack(len(payload)) + payload)
        await self.writer.drain()
        (size,) = zygote.HEADER.unpack(await self.reader.readexactly(zygote.HEADER.size))
        ok, value, recycle = pickle.loads(await self.reader.readexactly(size))
        self.tasks_done += 1
        return bool(ok), value, bool(recycle)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.writer.close()


def launch_zygote(module: str, limits: tuple[int, int]) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """`python -m qc_worker.zygote` importing `module`, and our end of its control socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # The worker's own import path (the working directory `qc-worker` added, a test's rootdir...).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "qc_worker.zygote", str(theirs.fileno()), *map(str, limits), module],
        pass_fds=(theirs.fileno(),),
        env=env,
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    return process, ours


class ProcessExecutor:
    """Long-lived processes forked from a zygote, started on the first task; a task past its time limit
    has its process killed.

    `max_tasks_per_child` / `max_memory_per_child_mib` (0: never) replace a process after its task once it
    has run that many tasks or holds more resident memory, as Celery's prefork pool does."""

    def __init__(
        self, processes: int, max_tasks_per_child: int = 0, max_memory_per_child_mib: int = 0
    ) -> None:
        self._limits = (max_tasks_per_child, max_memory_per_child_mib)
        self._slots = asyncio.Semaphore(processes)
        self._idle: list[PoolProcess] = []
        self._busy: set[PoolProcess] = set()
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._control_writer: asyncio.StreamWriter | None = None
        self._forked: asyncio.Queue[int] = asyncio.Queue()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._fork_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._closed = False
        self.recycled = 0  # processes replaced by a limit (read by tests and the benchmark)

    @property
    def zygote_pid(self) -> int | None:
        return None if self._zygote is None else self._zygote.pid

    def pids(self) -> list[int]:
        """The pool's processes now, idle and busy."""
        return [p.pid for p in self._idle] + [p.pid for p in self._busy]

    async def start(self, module: str) -> None:
        """Start the zygote, importing `module` (the task's) once for every process it will fork."""
        async with self._start_lock:  # the first tasks arrive together; one zygote serves them all
            if self._listener is None:
                await self._start(module)

    async def _start(self, module: str) -> None:
        self._zygote, ours = launch_zygote(module, self._limits)
        self._control = ours
        reader, self._control_writer = await asyncio.open_unix_connection(sock=ours)
        try:
            async with asyncio.timeout(ZYGOTE_START_TIMEOUT_SECONDS):
                ready = await reader.readline()
        except TimeoutError:
            ready = b""
        if ready != b"ready\n":
            raise RuntimeError(f"the pool's zygote could not start (importing {module!r}); see its log")
        self._listener = asyncio.create_task(self._listen(reader))

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """The zygote's answers: `forked PID` (in the order asked) and `exited PID CODE`."""
        while line := await reader.readline():
            word, *numbers = line.decode().split()
            pid = int(numbers[0])
            if word == "forked":
                self._forked.put_nowait(pid)
            elif word == "exited" and (pid in self._exits or pid in {p.pid for p in self._busy}):
                # Kept only for a process that died under a task or was killed: `_exit_code` reads it.
                exit_future = self._expect_exit(pid)
                if not exit_future.done():
                    exit_future.set_result(int(numbers[1]))
                # Whoever waits for it has it by then; a pid is reused only after many others.
                asyncio.get_running_loop().call_later(EXIT_REPORT_TIMEOUT_SECONDS, self._exits.pop, pid, None)

    async def _fork(self) -> PoolProcess:
        assert self._control is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        async with self._fork_lock:  # one request at a time: each `forked` answer is the last request's
            socket.send_fds(self._control, [b"f"], [theirs.fileno()])
            theirs.close()
            pid = await self._forked.get()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        return PoolProcess(pid, reader, writer)

    def _expect_exit(self, pid: int) -> asyncio.Future[int]:
        """The exit code the zygote will report for `pid` (asked before the process can be forgotten)."""
        return self._exits.setdefault(pid, asyncio.get_running_loop().create_future())

    async def _exit_code(self, pid: int) -> int | None:
        try:
            async with asyncio.timeout(EXIT_REPORT_TIMEOUT_SECONDS):
                return await self._expect_exit(pid)
        except TimeoutError:
            return None

    async def run(self, function: Callable[..., Any], argument: Any, time_limit_seconds: float) -> None:
        async with self._slots:
            await self.start(function.__module__)
            process = self._idle.pop() if self._idle else await self._fork()
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
                self._expect_exit(process.pid)
                self._busy.discard(process)
                process.writer.close()
                code = await self._exit_code(process.pid)
                raise TaskCrashed(f"the task's process died (exit code {code})") from error
            except BaseException:  # cancelled at the drain's end: the process may be mid-task, so it goes
                self._busy.discard(process)
                process.kill()
                raise
            self._busy.discard(process)
            if recycle:  # the process exits after this answer; the next task forks a fresh one
                self.recycled += 1
                process.writer.close()
                log.info("pool process recycled", extra={"pid": process.pid, "tasks": process.tasks_done})
            else:
                self._idle.append(process)
        if not ok:
            raise value

    async def stop_all(self) -> None:
        # Every busy process killed at once, and gone before the runtime hands its message back.
        busy = list(self._busy)
        for process in busy:
            self._expect_exit(process.pid)
            process.kill()
        await asyncio.gather(*(self._exit_code(p.pid) for p in busy))
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for process in self._idle:
            process.writer.close()
        if self._listener is not None:
            self._listener.cancel()
        if self._control is not None:
            # The zygote reads the end of file, kills what it forked and exits.
            with contextlib.suppress(OSError):
                self._control.shutdown(socket.SHUT_RDWR)
        if self._control_writer is not None:
            self._control_writer.close()
        if self._zygote is not None:
            try:
                self._zygote.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()


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
