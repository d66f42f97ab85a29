"""The fork server behind `executors.ProcessExecutor`: a small process that forks the pool's processes.

Started by the executor as `python -m qc_worker.zygote FD MODULE...` (a fresh interpreter, not a fork of
the worker, whose gRPC and asyncio threads must not be forked). It imports only the task's module, freezes
what it imported out of the garbage collector's reach, then forks one pool process per request, so every
pool process shares the interpreter and the task module's pages copy-on-write instead of importing them
again. multiprocessing's own forkserver and spawn contexts cannot do this: each process they start runs
the parent's `__main__` again (for `qc-worker`, the whole runtime, aio-pika and gRPC included), which is
what a slot cost before (about 28 MiB PSS each).

Protocol, on the control socket (a socketpair with the worker): the worker sends one byte with a socket
attached (SCM_RIGHTS); the zygote forks a process that serves tasks on that socket and answers
`forked PID`; whenever a process it forked exits it answers `exited PID CODE` (negative: the signal).
When the worker goes away (end of file) the zygote kills what it forked and exits.

A pool process reads (function, argument) requests, each a 4-byte length and a pickle, and answers
(ok, value or exception, recycle). It answers `recycle` and exits after its last task once it has run
`max_tasks` tasks or its resident memory passed `max_memory_mib` (0: no limit), as Celery's
`max_tasks_per_child` / `max_memory_per_child` do: between tasks, so no message is lost or repeated.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct("!I")  # the length of the pickle that follows
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def send_frame(sock: socket.socket, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(HEADER.pack(len(payload)) + payload)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive_frame(sock: socket.socket) -> Any:
    (size,) = HEADER.unpack(_read_exactly(sock, HEADER.size))
    return pickle.loads(_read_exactly(sock, size))


def resident_mib() -> float:
    """This process's resident memory now (RSS, as Celery's max_memory_per_child reads it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES / MIB


def should_recycle(
    tasks_done: int, max_tasks: int, max_memory_mib: int, resident: Callable[[], float] = resident_mib
) -> bool:
    """Replace the process after this task? Limits of 0 are off. The resident size is read only under a
    memory limit: it runs between every task's end and its answer, where a procfs read after a long task
    (cold caches) costs about 0.1 ms of the slot's time for nothing."""
    if max_tasks > 0 and tasks_done >= max_tasks:
        return True
    return max_memory_mib > 0 and resident() > max_memory_mib


def _portable(error: BaseException) -> BaseException:
    """The task's exception if it pickles, else a RuntimeError naming it (the parent re-raises it)."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def serve_tasks(sock: socket.socket, max_tasks: int, max_memory_mib: int) -> None:
    """A pool process: run tasks until told to stop (end of file) or until a limit says recycle."""
    tasks_done = 0
    while True:
        try:
            function, argument = receive_frame(sock)
        except EOFError:
            return
        try:
            reply: tuple[bool, Any] = (True, function(argument))
        except BaseException as error:  # the task's outcome, whatever it raised, goes back to the worker
            reply = (False, _portable(error))
        tasks_done += 1
        recycle = should_recycle(tasks_done, max_tasks, max_memory_mib)
        try:
            send_frame(sock, (*reply, recycle))
        except pickle.PicklingError as error:
            send_frame(sock, (False, RuntimeError(f"the task's result does not pickle: {error}"), recycle))
        if recycle:
            return


def _fork_one(
    control: socket.socket, wakeup_fds: tuple[int, int], task_socket: socket.socket, limits: tuple[int, int]
) -> int:
    pid = os.fork()
    if pid:
        task_socket.close()
        return pid
    # The pool process: nothing of the zygote's plumbing, default signals, the collector back on.
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when a task stops
        control.close()
        for fd in wakeup_fds:
            os.close(fd)
        gc.enable()
        serve_tasks(task_socket, *limits)
    except BaseException:
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(control: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        control.sendall(f"exited {pid} {os.waitstatus_to_exitcode(status)}\n".encode())


def serve(control: socket.socket, max_tasks: int, max_memory_mib: int) -> None:
    """Fork on request until the worker closes the control socket; then kill every child and return."""
    children: set[int] = set()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through the wakeup fd
    try:
        while True:
            readable, _, _ = select.select([control.fileno(), wake_read], [], [])
            if wake_read in readable:
                while True:
                    try:
                        if not os.read(wake_read, 512):
                            break
                    except BlockingIOError:
                        break
                _reap(control, children)
            if control.fileno() in readable:
                data, fds, _, _ = socket.recv_fds(control, 1, 1)
                if not data:
                    return
                task_socket = socket.socket(fileno=fds[0])
                pid = _fork_one(control, (wake_read, wake_write), task_socket, (max_tasks, max_memory_mib))
                children.add(pid)
                control.sendall(f"forked {pid}\n".encode())
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[0]))
    max_tasks, max_memory_mib = int(argv[1]), int(argv[2])
    gc.disable()  # no collection while importing: what is imported stays in place, shared with the forks
    for module in argv[3:]:
        importlib.import_module(module)
    gc.freeze()  # the forks' collections never touch (and so never copy) what the zygote imported
    control.sendall(b"ready\n")
    serve(control, max_tasks, max_memory_mib)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
