"""The rate limit at run time: tasks wait here for a token; the pod's share is followed from its file.

Created by `runtime.Runtime`, which asks `acquire` before a task starts and `window` before a receive.
The arithmetic is pure, in `qc_worker.rate_limit`. The share file is the operator's ConfigMap mounted in
the pod (`--rate-limit-file`): the kubelet swaps its content in place when the operator changes the share,
so the file is stat'ed every `SHARE_POLL_SECONDS` and read again when it changed — no restart, no rollout.
A missing file or an empty one means no share; an unreadable or invalid one keeps the share it had, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from qc_worker import rate_limit
from qc_worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)
SHARE_POLL_SECONDS = 1.0  # how often the share file is stat'ed (a stat is cheap; the kubelet is slower)


def loop_time() -> float:
    """The event loop's clock (monotonic in production; the fake clock under the tests' looptime)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class Throttle:
    def __init__(
        self,
        task_limit_per_second: float | None,
        share_path: str,
        on_change: Callable[[], None],
        metrics: WorkerMetrics,
        clock: Callable[[], float] = loop_time,
    ) -> None:
        self._task_limit = task_limit_per_second
        self._share_path = share_path
        self._on_change: Callable[[], None] = lambda: None  # the first read is not a change
        self._clock = clock
        self._metrics = metrics
        self._file_version: tuple[int, int] | None = None  # (inode, mtime ns) of the share file last read
        self.share_per_second: float | None = None
        self.waiting = 0  # messages held while their task waits for a token (not busy: see metrics)
        self._task_seconds: float | None = None
        self._changed = asyncio.Event()  # replaced on every change: waiters wake and recompute
        self._bucket = rate_limit.TokenBucket(task_limit_per_second, updated_seconds=clock())
        self._watcher: asyncio.Task[None] | None = None
        self.reload()
        self._on_change = on_change
        self._export()

    def _export(self) -> None:
        self._metrics.set_rate_limit(self.waiting, self.share_per_second)

    @property
    def rate_per_second(self) -> float | None:
        return rate_limit.combined_rate(self._task_limit, self.share_per_second)

    def window(self, capacity: int) -> int:
        return rate_limit.window(capacity, self.rate_per_second, self._task_seconds)

    def task_finished(self, seconds: float) -> None:
        self._task_seconds = rate_limit.moving_average(self._task_seconds, seconds)

    async def acquire(self, count: int, stopping: asyncio.Event) -> bool:
        """Wait until `count` tokens are taken (True), or until `stopping` is set (False)."""
        self.waiting += count
        self._export()
        try:
            while not stopping.is_set():
                wait_seconds = self._bucket.take(count, self._clock())
                if wait_seconds == 0.0:
                    return True
                changed = self._changed
                waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stopping.wait())]
                try:
                    await asyncio.wait(waiters, timeout=wait_seconds, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            return False
        finally:
            self.waiting -= count
            self._export()

    # --- the share file ---
    def reload(self) -> None:
        """Read the share file if it changed since the last read."""
        if not self._share_path:
            return
        version: tuple[int, int] | None = None
        text = ""  # a missing file: no share
        try:
            status = os.stat(self._share_path)  # follows the kubelet's ..data symlink to the current file
            version = (status.st_ino, status.st_mtime_ns)
            if version != self._file_version:
                with open(self._share_path, encoding="utf-8") as file:
                    text = file.read()
        except FileNotFoundError:
            version = None
        except OSError as error:
            log.warning("cannot read the rate-limit share file %s: %s", self._share_path, error)
            return
        if version == self._file_version:
            return
        self._file_version = version
        try:
            share = rate_limit.parse_share(text)
        except ValueError as error:
            log.error(
                "ignoring the share file %s, keeping %s: %s", self._share_path, self.share_per_second, error
            )
            return
        if share != self.share_per_second:
            log.info("rate-limit share", extra={"from": self.share_per_second, "to": share})
            self.share_per_second = share
            self._bucket.set_rate(self.rate_per_second, self._clock())
            self._changed.set()
            self._changed = asyncio.Event()
            self._export()
            self._on_change()

    def start(self) -> None:
        if self._share_path:
            self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(SHARE_POLL_SECONDS)
            self.reload()
