"""RabbitMQ through aio-pika: a durable queue, manual acks, prefetch equal to the in-flight window.

Retries are republished, not requeued: classic queues do not count redeliveries, so a failed message is
published again to its queue with `x-qc-attempt` + 1 (after its backoff, with a publisher confirm) and
only then is the original acked — a crash in between makes a duplicate, never a loss. Dead letters go,
confirmed, to an exchange (default `<queue>.dead-letter`, with a durable `<queue>.dead` queue bound to it
so nothing is dropped) with the reason in the headers. A message redelivered after a worker crash keeps
its attempt count. RabbitMQ closes a channel whose delivery stays unacked past `consumer_timeout`
(30 min by default): keep task time limits below it, or raise it on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from qc_worker.messages import Delivery, Message
from qc_worker.sources.base import ReceiveFailed, dead_letter_headers

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-qc-attempt"
RECEIVE_WAIT_SECONDS = 1.0


def _attempt(incoming: AbstractIncomingMessage) -> int:
    raw = (incoming.headers or {}).get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(str(raw)))
    except ValueError:
        return 1  # a foreign header value must not make the message unprocessable


class RabbitMQSource:
    name = "rabbitmq"
    ack_deadline_seconds = None  # no per-message deadline (only the channel's consumer_timeout)

    def __init__(self, url: str, queue: str, dead_letter_exchange: str, prefetch: int) -> None:
        self._url = url
        self.queue_name = queue
        self.dead_letter_exchange = dead_letter_exchange or f"{queue}.dead-letter"
        self._prefetch = prefetch
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._channel.declare_queue(self.queue_name, durable=True)
        exchange = await self._channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead = await self._channel.declare_queue(f"{self.queue_name}.dead", durable=True)
        await dead.bind(exchange, routing_key=self.queue_name)
        self._consumer_tag = await self._queue.consume(self._inbox.put, no_ack=False)

    async def receive(self, max_messages: int) -> list[Delivery]:
        try:
            first = await asyncio.wait_for(self._inbox.get(), RECEIVE_WAIT_SECONDS)
        except TimeoutError:
            # Nothing came: an empty queue only if the connection was up (the operator reads [] as empty);
            # while aio-pika's robust connection reconnects, this is a failed receive.
            if self._connection is None or not self._connection.connected.is_set():
                raise ReceiveFailed("the connection to RabbitMQ is down, reconnecting") from None
            return []
        batch = [first]
        while len(batch) < max_messages and not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        return [self._delivery(incoming) for incoming in batch]

    @staticmethod
    def _delivery(incoming: AbstractIncomingMessage) -> Delivery:
        headers = {str(k): str(v) for k, v in (incoming.headers or {}).items()}
        message = Message(
            data=incoming.body,
            message_id=incoming.message_id or f"tag-{incoming.delivery_tag}",
            attributes=headers,
            delivery_attempt=_attempt(incoming),
        )
        return Delivery(message, handle=incoming)

    async def ack(self, delivery: Delivery) -> bool:
        try:
            await delivery.handle.ack()
        except Exception as error:  # the channel died: the broker has already requeued the message
            log.warning("ack failed, the message will be redelivered: %s", error)
            return False
        return True

    async def _publish(
        self, exchange_name: str, routing_key: str, delivery: Delivery, headers: dict[str, str]
    ) -> None:
        assert self._channel is not None
        incoming: AbstractIncomingMessage = delivery.handle
        message = aio_pika.Message(
            body=incoming.body,
            headers=headers,  # type: ignore[arg-type]
            content_type=incoming.content_type,
            message_id=delivery.message.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        exchange = (
            self._channel.default_exchange
            if not exchange_name
            else await self._channel.get_exchange(exchange_name)
        )
        await exchange.publish(message, routing_key=routing_key)  # returns once the broker confirmed

    async def retry(self, delivery: Delivery, delay_seconds: float) -> None:
        await asyncio.sleep(delay_seconds)  # the backoff; bounded by --retry-backoff-max-seconds
        headers = {**delivery.message.attributes, ATTEMPT_HEADER: str(delivery.message.delivery_attempt + 1)}
        await self._publish("", self.queue_name, delivery, headers)
        await self.ack(delivery)

    async def release(self, delivery: Delivery) -> None:
        with contextlib.suppress(Exception):  # a dead channel has requeued it already
            await delivery.handle.nack(requeue=True)

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        headers = dead_letter_headers(delivery, self.name, reason, detail)
        await self._publish(self.dead_letter_exchange, self.queue_name, delivery, headers)
        await self.ack(delivery)

    async def extend(self, deliveries: list[Delivery], seconds: float) -> int:
        return 0  # RabbitMQ has no per-message deadline (only the channel's consumer_timeout)

    async def close(self) -> None:
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
        # Prefetched messages never handed to a task go back at once.
        while not self._inbox.empty():
            with contextlib.suppress(Exception):
                await self._inbox.get_nowait().nack(requeue=True)
        if self._connection is not None:
            await self._connection.close()
