"""The pull / monitor / ack loop: a continuous window of at most N messages in flight.

Invoked from `qc_worker.__main__`. The loop asks the source for exactly the free slots, starts each
message's task as soon as it arrives and refills a slot the moment a task settles — there are no rounds
waiting for the slowest task and no sleeps. Every message ends in exactly one of: ack (success), retry
with backoff, dead letter (malformed, or out of attempts), or release (shutdown before its task started).
On stop: no more pulls, in-flight tasks get the grace period, what never started is released at once,
and whatever is still running after the grace period is stopped and released.

The runtime owns the window (receive → start → settle); its helpers each have one job and their own
tests: `ordering.OrderingKeys` (one task per ordering key), `batching.Batcher` (batch tasks),
`leaser.Leaser` (ack deadlines), `tasks.resolve_limits` (a task's limits against the settings),
`throttle.Throttle` (the rate limit: a token before each start, a smaller window while throttled).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from qc_worker import rate_limit, tasks, tracing
from qc_worker.batching import Batcher
from qc_worker.executors import Executor, TaskCrashed, TimeLimitExceeded
from qc_worker.leaser import Leaser
from qc_worker.messages import Delivery, MalformedMessage
from qc_worker.metrics import WorkerMetrics
from qc_worker.ordering import OrderingKeys
from qc_worker.settings import WorkerSettings
from qc_worker.sources.base import AdjustablePrefetch, ReceiveFailed, Source
from qc_worker.throttle import Throttle

log = logging.getLogger(__name__)
RESUME_LOAD = 0.8  # fraction of capacity in flight below which pulling resumes
RECEIVE_ERROR_BACKOFF_SECONDS = 1.0  # after a failed receive, before asking the broker again
CONNECT_BACKOFF_MIN_SECONDS = 1.0  # first wait after a failed start-up connection, doubling up to the max
CONNECT_BACKOFF_MAX_SECONDS = 30.0


def retry_delay_seconds(attempt: int, minimum: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff from `minimum`, capped at `maximum`, with full jitter in its upper half."""
    ceiling = min(maximum, minimum * 2 ** max(0, attempt - 1))
    return rng.uniform(ceiling / 2, ceiling) if ceiling > minimum else ceiling


def failure(error: Exception) -> tuple[str, str]:
    """The `reason` label and the detail of a failed attempt."""
    if isinstance(error, TimeLimitExceeded):
        return "time_limit", str(error)
    if isinstance(error, TaskCrashed):
        return "crashed", str(error)
    if isinstance(error, MalformedMessage):
        return "malformed", str(error)
    return "exception", f"{type(error).__name__}: {error}"


class Runtime:
    def __init__(
        self,
        settings: WorkerSettings,
        task: tasks.TaskSpec,
        source: Source,
        executor: Executor,
        metrics: WorkerMetrics,
        traces: tracing.Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.task = task
        self.limits = tasks.resolve_limits(
            task.options, settings.task_time_limit_seconds, settings.max_delivery_attempts
        )
        self.source = source
        self.executor = executor
        self.metrics = metrics
        self.traces = traces or tracing.Tracing()  # off unless --tracing
        self.capacity = settings.concurrency
        # Flow control as the Pub/Sub client does it where a receive is a round trip: pause at full load,
        # resume below 80%, so a busy window pulls in batches. Where the broker pushes (RabbitMQ) a free
        # slot is refilled at once from what it already delivered.
        batch = max(1, self.capacity - int(self.capacity * RESUME_LOAD))
        self._min_pull = batch if source.batches_pulls else 1
        self.started = False
        self._held: dict[int, Delivery] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()  # set once enough slots are free for the next pull
        self._stopping = asyncio.Event()
        self._killing = False  # the grace period is over: the executor is stopping every task
        self._rng = random.Random()
        self._ordering = OrderingKeys()
        self._batcher: Batcher[Delivery] | None = None
        if task.options.batch_size is not None:
            self._batcher = Batcher(task.options.batch_size, task.options.batch_max_wait_seconds, self._start)
        # A changed share may widen the window: the pull loop looks again.
        self.throttle = Throttle(
            task.options.max_messages_per_second, settings.rate_limit_file, self._slot_freed.set, metrics
        )
        # What the source was told it may push (RabbitMQ's prefetch): the window plus the messages prefetched
        # beyond it, so a free slot starts at once; kept when a rate limit is lifted again.
        self._prefetch_extra = settings.rabbitmq_prefetch_extra
        self._prefetch = settings.rabbitmq_prefetch
        # Checked once: an isinstance against a runtime Protocol costs tens of microseconds per message.
        self._adjustable = source if isinstance(source, AdjustablePrefetch) else None

    # --- lifecycle ---
    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stop requested: no more pulls, draining %d messages in flight", len(self._held))
        self.started = False
        self._stopping.set()
        self._slot_freed.set()  # wakes the pull loop if it waits for a slot

    @property
    def ready(self) -> bool:
        """Consuming and the broker reachable: `/readyz` answers 503 otherwise."""
        return self.started and self.source.connected

    async def _connect(self) -> bool:
        """Connect, retrying with backoff while the broker is unreachable; False if stopped meanwhile."""
        delay = CONNECT_BACKOFF_MIN_SECONDS
        while not self._stopping.is_set():
            connecting = asyncio.create_task(self.source.connect())
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not connecting.done():  # a stop while connecting: SIGTERM does not wait for the broker
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
                return False
            try:
                connecting.result()
                return True
            except Exception as error:
                log.warning(
                    "cannot reach the broker, retrying in %g s: %s: %s", delay, type(error).__name__, error
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(CONNECT_BACKOFF_MAX_SECONDS, delay * 2)
        return False

    async def run(self) -> None:
        if not await self._connect():
            self.executor.close()
            return
        limit = self.source.delivery_limit
        if limit is not None and limit < self.limits.max_delivery_attempts:
            log.warning("the broker allows %d deliveries: dead-lettering after %d attempts", limit, limit)
            self.limits = dataclasses.replace(self.limits, max_delivery_attempts=limit)
        leaser = None
        if self.source.ack_deadline_seconds is not None:  # known once connected
            leaser = Leaser(
                self.source.extend,
                self._held.values,
                self.metrics,
                self.settings.lease_seconds,
                self.settings.max_lease_seconds,
                self.source.ack_deadline_seconds,
            )
            leaser.start()
        self.throttle.start()
        self.started = True
        log.info(
            "consuming", extra={"capacity": self.capacity, "task": self.task.name, "source": self.source.name}
        )
        try:
            await self._pull_loop()
            await self._drain()
        finally:
            await self.throttle.stop()
            if leaser is not None:
                await leaser.stop()
            await self.source.close()
            self.executor.close()

    async def _pull_loop(self) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await self._pull_until_stopped(stopping)
        finally:
            stopping.cancel()

    async def _pull_until_stopped(self, stopping: asyncio.Task[Any]) -> None:
        while not self._stopping.is_set():
            window = await self._window()
            free = window - len(self._held)
            if free < min(self._min_pull, window):
                self._slot_freed.clear()
                if not self._stopping.is_set():  # a stop sets `_slot_freed` too: no waiting task per message
                    await self._slot_freed.wait()
                continue
            try:
                deliveries = await self.source.receive(free)
            except ReceiveFailed as error:
                log.warning("receive failed, retrying in %g s: %s", RECEIVE_ERROR_BACKOFF_SECONDS, error)
                await asyncio.wait({stopping}, timeout=RECEIVE_ERROR_BACKOFF_SECONDS)
                continue
            if self._stopping.is_set():
                for delivery in deliveries:  # arrived after the stop: never started
                    await self.source.release(delivery)
                break
            if deliveries:
                self._accept(deliveries)
            elif not self.source.holds_back():
                # Slots free and nothing to give, none of ours waiting out a retry at the broker: the
                # queue is empty now (the operator reads this).
                self.metrics.empty_receive()

    def _accept(self, deliveries: list[Delivery]) -> None:
        self.metrics.received(len(deliveries))
        for delivery in deliveries:
            self._held[id(delivery)] = delivery
        self.metrics.set_in_flight(len(self._held))
        if self._batcher is not None:
            for delivery in deliveries:
                self._batcher.add(delivery)
            if len(self._held) >= self.capacity:  # the window is full: nothing more can join this batch
                self._batcher.flush()
            return
        for delivery in deliveries:
            if self._ordering.admit(delivery):
                self._start([delivery])

    # --- running and settling ---
    def _start(self, deliveries: list[Delivery]) -> None:
        if self._stopping.is_set():  # after a stop nothing starts: a late batch or the next of a key
            self._spawn(self._settle_all(deliveries, self.source.release))
        else:
            self._spawn(self._process(deliveries))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a task's attempt or a settlement in the background; `_drain` waits for all of them."""
        task = asyncio.create_task(coroutine)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _process(self, deliveries: list[Delivery]) -> None:
        self.traces.begin(deliveries, self.task.name, self.source.name)
        exhausted = [d for d in deliveries if d.message.delivery_attempt > self.limits.max_delivery_attempts]
        if exhausted:
            # Delivered more often than allowed though no attempt ended in a result: each one killed its
            # process or the whole worker. Dead-lettered without running it again.
            detail = "the earlier attempts ended without a result (the task's process or the worker died)"
            await self._fail(exhausted, "crashed", detail, time.monotonic())
            deliveries = [d for d in deliveries if d not in exhausted]
            if not deliveries:
                return
        if not await self.throttle.acquire(len(deliveries), self._stopping):
            await self._settle_all(deliveries, self.source.release)  # stopped while waiting: never started
            return
        messages = [d.message for d in deliveries]
        argument: Any = messages if self.task.is_batch else messages[0]
        started = time.monotonic()
        try:
            with self.traces.running(deliveries):
                await self.executor.run(self.task.function, argument, self.limits.time_limit_seconds)
        except asyncio.CancelledError:
            await self._settle_all(deliveries, self.source.release)  # stopped at the end of the grace period
            raise
        except Exception as error:
            if self._killing:  # the drain stopped its process (the process is gone): hand it back
                await self._settle_all(deliveries, self.source.release)
                return
            reason, detail = failure(error)
            await self._fail(deliveries, reason, detail, started)
        else:
            duration = time.monotonic() - started
            self.throttle.task_finished(duration)
            # The slot frees as the ack is sent: the next pull overlaps the ack's round trip. Until the
            # broker has it, the message is still ours only in the sense that a crash makes it come back.
            self._forget(deliveries)
            for delivery in deliveries:
                with self.traces.settling(delivery, "ack"):
                    acked = await self.source.ack(delivery)
                if acked:
                    self.metrics.acked(duration, time.monotonic() - delivery.received_monotonic)

    async def _fail(self, deliveries: list[Delivery], reason: str, detail: str, started: float) -> None:
        duration = time.monotonic() - started
        log.warning("task failed", extra={"reason": reason, "detail": detail, "messages": len(deliveries)})
        self.traces.failed(deliveries, reason, detail)
        for _ in deliveries:
            self.metrics.failed(reason, duration)
        # Where a retry hands the message back at once (Pub/Sub), a failed message frees its slot now;
        # where it holds it through the backoff (RabbitMQ), the broker will not deliver into that slot
        # before the retry settles, so neither does the window. The hand-back runs in the background.
        if not self.source.retry_holds_delivery:
            self._forget(deliveries)
        for delivery in deliveries:
            self._spawn(self._give_back_and_forget(delivery, reason, detail))

    async def _give_back_and_forget(self, delivery: Delivery, reason: str, detail: str) -> None:
        try:
            await self._give_back(delivery, reason, detail)
        finally:
            self._forget([delivery])

    async def _give_back(self, delivery: Delivery, reason: str, detail: str) -> None:
        attempts = self.limits.max_delivery_attempts
        if reason == "malformed" or delivery.message.delivery_attempt >= attempts:
            try:
                with self.traces.settling(delivery, "dead_letter"):
                    await self.source.dead_letter(delivery, reason, detail)
                self.metrics.dead_lettered(reason)
                return
            except Exception as error:  # no dead-letter destination, or it failed: keep the message
                log.error("dead-lettering failed, retrying the message instead: %s", error)
        delay = retry_delay_seconds(
            delivery.message.delivery_attempt,
            self.settings.retry_backoff_min_seconds,
            self.settings.retry_backoff_max_seconds,
            self._rng,
        )
        try:
            with self.traces.settling(delivery, "retry"):
                await self.source.retry(delivery, delay)
        except asyncio.CancelledError:
            # Stopped in its backoff at the end of the grace period: back at once, the failure counted.
            with contextlib.suppress(Exception):
                await self.source.retry(delivery, 0)
            raise
        self.metrics.retried()
        self.metrics.nacked()

    async def _settle_all(
        self, deliveries: list[Delivery], settle: Callable[[Delivery], Awaitable[None]]
    ) -> None:
        for delivery in deliveries:
            with contextlib.suppress(Exception), self.traces.settling(delivery, "release"):
                await settle(delivery)
            self.metrics.nacked()
        self._forget(deliveries)

    def _forget(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            delivery.settled = True
            was_held = self._held.pop(id(delivery), None) is not None
            if was_held and delivery.message.ordering_key and self._batcher is None:
                following = self._ordering.next_after(delivery.message.ordering_key)
                if following is not None:
                    self._start([following])
        self.metrics.set_in_flight(len(self._held))
        window = self.throttle.window(self.capacity)
        if window - len(self._held) >= min(
            self._min_pull, window
        ):  # wake the pull loop only when it can pull
            self._slot_freed.set()

    # --- the rate limit ---
    async def _window(self) -> int:
        """How many messages to hold now; a broker that pushes is told too, so the rest stay with it."""
        window = self.throttle.window(self.capacity)
        if self._adjustable is not None:
            # Throttled, a message beyond the window would only wait for a token: none is prefetched then.
            extra = self._prefetch_extra if window >= self.capacity else 0
            wanted = rate_limit.prefetch_to_set(self._prefetch, window + extra)
            if wanted is not None and await self._adjustable.set_prefetch(wanted):
                self._prefetch = wanted
        return window

    # --- shutdown ---
    async def _drain(self) -> None:
        never_started = self._ordering.drain()
        if self._batcher is not None:
            never_started += self._batcher.take_all()
        await self._settle_all(never_started, self.source.release)
        if self._running:
            done, pending = await asyncio.wait(set(self._running), timeout=self.settings.drain_grace_seconds)
            if pending:
                # Every process that runs a task is gone before its message is handed back: a task cannot
                # finish after its message went to another worker.
                self._killing = True
                await self.executor.stop_all()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            log.info("drained", extra={"finished": len(done), "stopped_at_grace_period": len(pending)})
