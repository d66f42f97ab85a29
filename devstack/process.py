"""One managed child process: started with its log in a file, checked for readiness, stopped by group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from devstack.polling import WaitTimeout, wait_until

READY_POLL_INTERVAL_SECONDS = 0.2
STOP_POLL_INTERVAL_SECONDS = 0.1
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_BYTES = 6000


class ServiceStartError(RuntimeError):
    """A service did not become ready in time; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time of one process so far (not its children's), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_tail(path: Path, limit_bytes: int = LOG_TAIL_BYTES) -> str:
    if not path.exists():
        return f"(no log at {path})"
    data = path.read_bytes()[-limit_bytes:]
    return data.decode("utf-8", errors="replace")


class ManagedProcess:
    """A child in its own process group, so stopping it also stops whatever it spawned (e.g. Java, Erlang)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def wait_ready(self, is_ready: Callable[[], bool], timeout_seconds: float) -> None:
        """Poll `is_ready` until it holds; raise with the log if the process dies or time runs out.

        An exception from `is_ready` means "not yet": a service refuses connections while it starts.
        """
        try:
            wait_until(
                lambda: self._exited() or is_ready(),
                timeout_seconds,
                f"{self.name} to be ready",
                READY_POLL_INTERVAL_SECONDS,
                retry_on=(Exception,),
            )
        except WaitTimeout as timeout:
            self.stop()
            raise ServiceStartError(
                f"{self.name} was not ready within {timeout_seconds:.0f} s (last: {timeout.last!r}); "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            ) from None
        if self.popen is not None and self._exited():
            raise ServiceStartError(
                f"{self.name} exited with code {self.popen.returncode} before it was ready; "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def _exited(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def stop(self) -> None:
        if self.popen is None:
            return
        stop_process_group(self.popen.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)
        self.popen = None


def stop_process_group(pid: int, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the group led by `pid`, then SIGKILL whatever is left after the grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_until(
            lambda: _group_gone(pid),
            grace_seconds,
            f"process group {pid} to exit",
            STOP_POLL_INTERVAL_SECONDS,
        )
    except WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _group_gone(pid: int) -> bool:
    """Whether no process of the group led by `pid` is left (reaping the leader if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


def running(service: S, started: list[Any]) -> Iterator[S]:
    """For a session fixture: `service` started (and listed for the failure report), stopped at the end."""
    started.append(service)
    try:
        service.start()
        yield service
    finally:
        service.stop()
