"""RabbitMQ through aio-pika: the queue as its owner declared it, manual acks, prefetch = the window.

The queue is checked passively by default, so a quorum queue or one with `x-message-ttl`,
`x-max-length` or `x-dead-letter-exchange` is consumed as it is; `--rabbitmq-declare-queue` declares it
with `--rabbitmq-queue-arguments` instead (queue type included). The dead-letter exchange is
`--rabbitmq-dead-letter-exchange`, else the queue's `x-dead-letter-exchange` argument, else
`<queue>.dead-letter`; an existing one of any type is used as it is, and only that default is declared
when missing (direct, with a durable `<queue>.dead` queue bound so nothing is dropped).

Retries, releases and dead letters are republished copies (`qc_worker.sources.rabbitmq_messages`: the
body, properties and typed headers kept, the attempt count signed into the message), confirmed before the
original is acked: a crash in between makes a duplicate, never a loss. A retry holds its delivery through
its backoff, so the prefetch slot stays taken (`retry_holds_delivery`). A suspect (a message held when a
worker died, `rabbitmq_messages`) runs alone: the consumer pauses, what was prefetched beside it goes
back uncounted, and consuming resumes once it is settled. RabbitMQ closes a channel whose
delivery stays unacked past `consumer_timeout` (30 min by default): keep task time limits below it.

`amqps://` URLs verify the broker against the CA file given (else the system's) and show the client
certificate given; the context is built when the runtime connects (at start-up: aio-pika's own
reconnections reuse it), so certificates rotated in the mounted Secret are used from the pod's next
start. A failed handshake is a ConnectionError naming its cause (certificate verify failed, hostname
mismatch, client certificate wanted): the runtime logs it, answers /readyz 503 and retries with backoff,
as for a broker that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Coroutine
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from qc_common import tls as common_tls
from qc_worker import tracing
from qc_worker.messages import Delivery, Message
from qc_worker.sources import rabbitmq_messages as rules
from qc_worker.sources.base import ReceiveFailed, dead_letter_reasons
from qc_worker.sources.rabbitmq_tls import TlsFiles as TlsFiles  # the worker's CLI builds it from here

log = logging.getLogger(__name__)

RECEIVE_WAIT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 10.0
DEAD_LETTER_EXCHANGE_ARGUMENT = "x-dead-letter-exchange"
DEAD_LETTER_ROUTING_KEY_ARGUMENT = "x-dead-letter-routing-key"
DELIVERY_LIMIT_ARGUMENT = "x-delivery-limit"


async def _whole(settlement: Coroutine[Any, Any, None]) -> None:
    """Run a publish-then-ack to its end even if the caller is cancelled meanwhile (the drain's grace
    period ending): a copy published but its original left unacked would come back as a duplicate."""
    task = asyncio.ensure_future(settlement)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


class RabbitMQSource:
    name = "rabbitmq"
    ack_deadline_seconds = None  # no per-message deadline (only the channel's consumer_timeout)
    batches_pulls = False  # the broker pushes into the inbox: a free slot is refilled from it at once
    retry_holds_delivery = True  # the backoff runs with the message unacked: its prefetch slot is taken

    def __init__(
        self,
        url: str,
        queue: str,
        dead_letter_exchange: str,
        prefetch: int,
        declare_queue: bool = False,
        queue_arguments: dict[str, Any] | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self._url = url
        self._tls = tls or TlsFiles()
        self._user = urllib.parse.unquote(urllib.parse.urlsplit(url).username or "guest")
        self._key = rules.signing_key(url)
        self.queue_name = queue
        self._declare = declare_queue
        self._arguments = dict(queue_arguments or {})
        self._default_dead_letter = not dead_letter_exchange and DEAD_LETTER_EXCHANGE_ARGUMENT not in (
            self._arguments
        )
        self.dead_letter_exchange = str(
            dead_letter_exchange or self._arguments.get(DEAD_LETTER_EXCHANGE_ARGUMENT, f"{queue}.dead-letter")
        )
        self._dead_letter_key = self._arguments.get(DEAD_LETTER_ROUTING_KEY_ARGUMENT)
        limit = self._arguments.get(DELIVERY_LIMIT_ARGUMENT)
        self.delivery_limit = limit if isinstance(limit, int) and limit > 0 else None
        self._prefetch = prefetch
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._moving: set[asyncio.Task[None]] = set()
        self._suspects: dict[int, Delivery] = {}  # received as suspects, by id(), until settled
        self._alone: Delivery | None = None  # the suspect running alone: consuming is paused meanwhile

    def holds_back(self) -> bool:
        return self._alone is not None  # consuming is paused: an empty receive says nothing of the queue

    @property
    def connected(self) -> bool:
        channel = self._channel
        connection = self._connection
        return bool(connection and connection.connected.is_set() and channel and not channel.is_closed)

    async def connect(self) -> None:
        context = self._tls.context() if self._url.startswith("amqps://") else None
        try:
            connection = await aio_pika.connect_robust(
                self._url, timeout=CONNECT_TIMEOUT_SECONDS, ssl_context=context
            )
        except Exception as error:
            given = bool(self._tls.client_cert_file)
            failure = common_tls.describe_failure(error, given) if context is not None else None
            if failure is None:
                raise
            raise ConnectionError(failure) from error
        try:
            self._channel = await connection.channel(publisher_confirms=True)
            await self._channel.set_qos(prefetch_count=self._prefetch)
            if self._declare:
                self._queue = await self._channel.declare_queue(
                    self.queue_name, durable=True, arguments=self._arguments
                )
            else:
                self._queue = await self._channel.declare_queue(self.queue_name, passive=True)
            await self._check_dead_letter_exchange(connection)
            self._connection = connection
            self._consumer_tag = await self._queue.consume(self._inbox.put, no_ack=False)
        except BaseException:
            self._connection = self._channel = self._queue = None
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    async def set_prefetch(self, count: int) -> bool:
        """Let the broker push at most `count` messages (the runtime's window while rate limited). RabbitMQ
        applies a consumer's prefetch when it starts, so the consumer is replaced: what the old one delivered
        (up to its cancel-ok, aiormq hands over every delivery before it) stays ours and is settled as usual;
        the new one gets `count` more once those are settled. False when it failed (the runtime asks again).
        """
        if self._channel is None or self._queue is None:
            return False
        try:
            await self._channel.set_qos(prefetch_count=count)
            if self._alone is not None:  # paused: the consumer comes back with `count` when it resumes
                self._prefetch = count
                return True
            if self._consumer_tag is not None:
                await self._queue.cancel(self._consumer_tag)
                self._consumer_tag = None
            self._consumer_tag = await self._queue.consume(self._inbox.put, no_ack=False)
        except Exception as error:  # the connection is down: asked again on the next receive
            log.warning("could not change the prefetch to %d: %s", count, error)
            return False
        self._prefetch = count
        return True

    async def _exists(self, connection: AbstractRobustConnection, kind: str, name: str) -> bool:
        """A passive check on a channel of its own: a missing entity closes the channel that asked."""
        channel = await connection.channel()
        try:
            if kind == "exchange":
                await channel.get_exchange(name, ensure=True)
            else:
                await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return True

    async def _check_dead_letter_exchange(self, connection: AbstractRobustConnection) -> None:
        assert self._channel is not None
        name = self.dead_letter_exchange
        if not name or await self._exists(connection, "exchange", name):
            return  # "" is the default exchange; an existing exchange is used whatever its type
        if not self._default_dead_letter:
            raise RuntimeError(f"the dead-letter exchange {name!r} does not exist")
        exchange = await self._channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
        dead_name = f"{self.queue_name}.dead"
        if await self._exists(connection, "queue", dead_name):
            dead_queue = await self._channel.get_queue(dead_name, ensure=False)
        else:
            dead_queue = await self._channel.declare_queue(dead_name, durable=True)
        await dead_queue.bind(exchange, routing_key=self.queue_name)

    async def receive(self, max_messages: int) -> list[Delivery]:
        if self._alone is not None and self._alone.settled:
            await self._resume()
        deadline = time.monotonic() + RECEIVE_WAIT_SECONDS
        while True:
            if self._inbox.empty():
                remaining = deadline - time.monotonic()
                try:
                    async with asyncio.timeout(max(0.0, remaining)):  # not wait_for: no task per receive
                        first = await self._inbox.get()
                except TimeoutError:
                    # Nothing came: an empty queue only if the connection was up (the operator reads [] as
                    # empty); while aio-pika's robust connection reconnects, this is a failed receive.
                    if not self.connected:
                        raise ReceiveFailed("the connection to RabbitMQ is down, reconnecting") from None
                    return []
            else:  # already delivered (prefetched beyond the window): no waiting task, no extra loop turn
                first = self._inbox.get_nowait()
            batch = [first]
            while len(batch) < max_messages and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            deliveries = [d for d in map(self._delivery, batch) if d is not None]
            suspect = next((d for d in deliveries if id(d) in self._suspects), None)
            if suspect is not None and self._alone is None:
                return await self._run_alone(suspect, [d for d in deliveries if d is not suspect])
            if deliveries:
                return deliveries

    async def _run_alone(self, suspect: Delivery, others: list[Delivery]) -> list[Delivery]:
        """Pause consuming and hand back, uncounted, everything delivered beside `suspect`; then only
        `suspect` starts. If it kills the worker again, nothing that merely waited is counted with it."""
        assert self._queue is not None
        self._alone = suspect
        if self._consumer_tag is not None:  # aiormq hands over every delivery before the cancel-ok
            with contextlib.suppress(Exception):  # the channel died: the broker requeued them already
                await self._queue.cancel(self._consumer_tag)
            self._consumer_tag = None
        while not self._inbox.empty():
            delivery = self._delivery(self._inbox.get_nowait())
            if delivery is not None:
                others.append(delivery)
        for delivery in others:
            await self.release(delivery)
        return [suspect]

    async def _resume(self) -> None:
        assert self._queue is not None
        try:
            self._consumer_tag = await self._queue.consume(self._inbox.put, no_ack=False)
        except Exception as error:  # the connection is down: asked again on the next receive
            raise ReceiveFailed(f"could not resume consuming: {error}") from error
        self._alone = None

    def _delivery(self, incoming: AbstractIncomingMessage) -> Delivery | None:
        if _channel_gone(incoming):
            return None  # from a channel that died: the broker has put it back already
        headers = incoming.headers or {}
        attempt = rules.delivery_attempt(
            headers, bool(incoming.redelivered), self._key, self.queue_name, incoming.body
        )
        message = Message(
            data=incoming.body,
            message_id=incoming.message_id or f"tag-{incoming.delivery_tag}",
            attributes={str(k): rules.text(v) for k, v in headers.items() if k not in rules.OUR_HEADERS},
            delivery_attempt=attempt.number,
        )
        delivery = Delivery(message, handle=incoming)
        if attempt.suspect and not attempt.move_first:  # a moved one comes back as a marked copy
            self._suspects[id(delivery)] = delivery
        if attempt.move_first:
            # It may have killed its process or the worker: count that attempt in the message before it
            # runs again, so a message that crashes every time reaches its dead letter.
            task = asyncio.create_task(self._republish_settled(delivery, attempt.number - 1))
            self._moving.add(task)
            task.add_done_callback(self._moving.discard)
            return None
        return delivery

    async def _republish_settled(self, delivery: Delivery, attempts: int) -> None:
        try:
            await self._requeue(delivery, attempts, suspect=True)
        except Exception as error:  # the broker keeps the original: it comes back
            log.warning("could not count a redelivery into the message: %s", error)

    async def ack(self, delivery: Delivery) -> bool:
        self._suspects.pop(id(delivery), None)
        try:
            await delivery.handle.ack()
        except Exception as error:  # the channel died: the broker has already requeued the message
            log.warning("ack failed, the message will be redelivered: %s", error)
            return False
        return True

    async def _publish(
        self, exchange_name: str, routing_key: str, delivery: Delivery, headers: dict[str, Any]
    ) -> None:
        assert self._channel is not None
        incoming: AbstractIncomingMessage = delivery.handle
        properties = {name: getattr(incoming, name) for name in rules.PROPERTIES}
        # Ours, and a trace context for a message that came without one (`tracing.carried`).
        extra = {**tracing.carried(), **headers}
        fields = rules.copy_fields(properties, incoming.headers, self._user, incoming.user_id, extra)
        message = aio_pika.Message(body=incoming.body, **fields)
        exchange = (
            self._channel.default_exchange
            if not exchange_name
            else await self._channel.get_exchange(exchange_name, ensure=False)
        )
        await exchange.publish(message, routing_key=routing_key)  # returns once the broker confirmed

    async def _requeue(self, delivery: Delivery, attempts: int, suspect: bool = False) -> None:
        """A copy that has had `attempts` attempts (marked if a `suspect`) at the tail; the original acked."""
        headers = rules.attempt_headers(self._key, self.queue_name, delivery.message.data, attempts, suspect)
        await _whole(self._publish_then_ack("", self.queue_name, delivery, headers))

    async def _publish_then_ack(
        self, exchange_name: str, routing_key: str, delivery: Delivery, headers: dict[str, Any]
    ) -> None:
        await self._publish(exchange_name, routing_key, delivery, headers)
        await self.ack(delivery)

    async def retry(self, delivery: Delivery, delay_seconds: float) -> None:
        self._suspects.pop(id(delivery), None)  # its attempt ended with a result: it did not kill the worker
        await asyncio.sleep(delay_seconds)  # the backoff; bounded by --retry-backoff-max-seconds
        await self._requeue(delivery, delivery.message.delivery_attempt)

    async def release(self, delivery: Delivery) -> None:
        """Back with its count unchanged: a nack would mark it redelivered, which counts as an attempt."""
        suspect = self._suspects.pop(id(delivery), None) is not None
        try:
            await self._requeue(delivery, delivery.message.delivery_attempt - 1, suspect)
        except Exception:
            with contextlib.suppress(Exception):  # a dead channel has requeued it already
                await delivery.handle.nack(requeue=True)

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        incoming: AbstractIncomingMessage = delivery.handle
        routing_key = self.queue_name if self._default_dead_letter else incoming.routing_key or ""
        if self._dead_letter_key is not None:
            routing_key = str(self._dead_letter_key)
        self._suspects.pop(id(delivery), None)
        reasons = dead_letter_reasons(delivery, self.name, reason, detail, limit_bytes=None)
        await _whole(self._publish_then_ack(self.dead_letter_exchange, routing_key, delivery, reasons))

    async def extend(self, deliveries: list[Delivery], seconds: float) -> int:
        return 0  # RabbitMQ has no per-message deadline (only the channel's consumer_timeout)

    async def close(self) -> None:
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
        if self._moving:
            await asyncio.gather(*self._moving, return_exceptions=True)
        # Prefetched messages never handed to a task go back at once, their count unchanged.
        while not self._inbox.empty():
            incoming = self._inbox.get_nowait()
            delivery = self._delivery_for_release(incoming)
            if delivery is not None:
                await self.release(delivery)
        if self._connection is not None:
            await self._connection.close()

    def _delivery_for_release(self, incoming: AbstractIncomingMessage) -> Delivery | None:
        if incoming.channel.is_closed:
            return None
        # A redelivery counts (its previous delivery may have killed a worker); handing it back does not.
        attempt = rules.delivery_attempt(
            incoming.headers or {}, bool(incoming.redelivered), self._key, self.queue_name, incoming.body
        )
        return Delivery(Message(incoming.body, incoming.message_id or "", {}, attempt.number), incoming)


def _channel_gone(incoming: AbstractIncomingMessage) -> bool:
    """A message waiting in the inbox (prefetched beyond the window) may outlive its channel: aio-pika then
    raises on `.channel` instead of answering."""
    try:
        return incoming.channel.is_closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return True
