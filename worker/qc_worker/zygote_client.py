"""The worker's end of one `qc_worker.zygote`: start it, ask it to fork, read its answers, see it die.

Used by `executors.ProcessExecutor`, which decides what a death means (start another zygote, or stop the
worker when they keep dying at once); this module only reports it: `died` resolves to the zygote's exit
code once its control socket ends without our asking, and a fork still waiting for its answer then fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

START_TIMEOUT_SECONDS = 60.0  # importing the task's module in the zygote
EXIT_REPORT_TIMEOUT_SECONDS = 5.0  # from a pool process's end of file to the zygote's report of its exit
REAP_TIMEOUT_SECONDS = 5.0  # from the end of a zygote's control socket to its exit status


class ZygoteFailed(RuntimeError):
    """The zygote did not start, or died before it forked the process asked for."""


def launch(module: str, limits: tuple[int, int]) -> tuple[subprocess.Popen[bytes], socket.socket]:
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


async def exit_status(process: subprocess.Popen[bytes]) -> int:
    """The exit code of a process that is going (its socket ended); killed if it lingers."""
    try:
        return await asyncio.to_thread(process.wait, REAP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        return await asyncio.to_thread(process.wait)


class Zygote:
    """A started zygote. `keep_exit(pid)` says whose exit reports to keep (a process that died under a
    task); `on_death(zygote)` is called once it died without our asking."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        control: socket.socket,
        writer: asyncio.StreamWriter,
        keep_exit: Callable[[int], bool],
    ) -> None:
        self.process = process
        self.started_monotonic = time.monotonic()
        self.died: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._control = control
        self._writer = writer
        self._keep_exit = keep_exit
        self._forked: asyncio.Queue[int] = asyncio.Queue()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._fork_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        module: str,
        limits: tuple[int, int],
        keep_exit: Callable[[int], bool],
        on_death: Callable[[Zygote], None],
    ) -> Zygote:
        process, ours = launch(module, limits)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                ready = await reader.readline()
        except TimeoutError:
            ready = b""
        if ready != b"ready\n":
            writer.close()
            code = await exit_status(process)
            raise ZygoteFailed(f"the pool's zygote could not start (importing {module!r}, exit code {code})")
        started = cls(process, ours, writer, keep_exit)
        started._listener = asyncio.create_task(started._listen(reader, on_death))
        return started

    @property
    def lived_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic

    async def _listen(self, reader: asyncio.StreamReader, on_death: Callable[[Zygote], None]) -> None:
        """The answers: `forked PID` (in the order asked) and `exited PID CODE`; then the socket's end."""
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                word, *numbers = line.decode().split()
                pid = int(numbers[0])
                if word == "forked":
                    self._forked.put_nowait(pid)
                elif word == "exited" and (pid in self._exits or self._keep_exit(pid)):
                    # Kept only for a process that died under a task or was killed: `exit_of` reads it.
                    exit_future = self.expect_exit(pid)
                    if not exit_future.done():
                        exit_future.set_result(int(numbers[1]))
                    # Whoever waits for it has it by then; a pid is reused only after many others.
                    asyncio.get_running_loop().call_later(
                        EXIT_REPORT_TIMEOUT_SECONDS, self._exits.pop, pid, None
                    )
        self.died.set_result(await exit_status(self.process))  # the socket ended: it is dead, or dying
        self._writer.close()
        on_death(self)

    async def fork(self) -> tuple[int, socket.socket]:
        """A new pool process: its pid and our end of its task socket."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            async with self._fork_lock:  # one request at a time: each `forked` answer is the last request's
                with contextlib.suppress(OSError):  # a zygote gone already: `died` says so below
                    socket.send_fds(self._control, [b"f"], [theirs.fileno()])
                theirs.close()
                forked = asyncio.ensure_future(self._forked.get())
                try:
                    await asyncio.wait({forked, self.died}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    answered = forked.done()
                    forked.cancel()
                if not answered:
                    code = self.died.result()
                    raise ZygoteFailed(
                        f"the pool's zygote died (exit code {code}) before it forked a process"
                    )
                return forked.result(), ours
        except BaseException:
            theirs.close()
            ours.close()
            raise

    def expect_exit(self, pid: int) -> asyncio.Future[int]:
        """The exit code the zygote will report for `pid` (asked before the process can be forgotten)."""
        return self._exits.setdefault(pid, asyncio.get_running_loop().create_future())

    async def exit_of(self, pid: int) -> str:
        """`pid`'s exit code in words, once reported (or not within EXIT_REPORT_TIMEOUT_SECONDS)."""
        exit_future = self.expect_exit(pid)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_REPORT_TIMEOUT_SECONDS):
                await asyncio.wait({exit_future, self.died}, return_when=asyncio.FIRST_COMPLETED)
        if exit_future.done():
            return f"exit code {exit_future.result()}"
        if self.died.done():  # no one is left to report it
            return f"exit code unknown: the pool's zygote died too (exit code {self.died.result()})"
        return "exit code unknown"

    def close(self) -> None:
        """Stop it: it reads the end of file, kills what it forked and exits."""
        if self._listener is not None:
            self._listener.cancel()
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)
        self._writer.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
