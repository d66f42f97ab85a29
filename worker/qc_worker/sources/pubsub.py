"""Google Cloud Pub/Sub through google-cloud-pubsub's unary Pull, with our own lease management.

Why unary pull and not the client's streaming pull: the window decides how many messages to take (exactly
the free slots), so no message waits leased in a client-side buffer where a scale-down or a crash would
strand it until its deadline; lease extension, retry delays (modify_ack_deadline) and shutdown hand-back
(deadline 0) are explicit. Calls go through the library's asyncio client (grpc.aio) on the worker's own
event loop: no thread hop and no GIL hand-over per call. Acks are batched (`qc_worker.ack_batcher`: a
short window, one call for many ack ids), as the client library's dispatcher does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from google.api_core import exceptions
from google.pubsub_v1 import types
from google.pubsub_v1.services.publisher import PublisherAsyncClient
from google.pubsub_v1.services.subscriber import SubscriberAsyncClient

from qc_worker import ack_batcher, tracing
from qc_worker.messages import Delivery, Message
from qc_worker.sources import base
from qc_worker.sources.base import ReceiveFailed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
PULL_TIMEOUT_SECONDS = 5.0  # how long one empty pull may wait for messages
# Before asking again after a pull answered empty early: never a busy loop against the service.
EARLY_EMPTY_PAUSE_SECONDS = 0.05
MAX_ACK_DEADLINE_SECONDS = 600
DEFAULT_ACK_DEADLINE_SECONDS = 10.0  # Pub/Sub's, for a subscription created without one
DEFAULT_POLICY_MAX_DELIVERY_ATTEMPTS = 5  # Pub/Sub's, for a dead-letter policy created without one
MAX_TRACKED_RECEIPTS = 100_000  # messages whose receipts are counted at once (see Receipts)


class Receipts:
    """How many times this worker has received each message it has not acked.

    Without a dead-letter policy on the subscription Pub/Sub reports delivery_attempt 0, so attempts are
    counted here. A message retried and then taken by another pod is never acked here: past `limit`
    messages the oldest is forgotten (it would count from 1 again), so the table cannot grow for the life
    of the pod.
    """

    def __init__(self, limit: int = MAX_TRACKED_RECEIPTS) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}  # insertion order: the oldest first

    def __len__(self) -> int:
        return len(self._counts)

    def received(self, message_id: str) -> int:
        """Count one more receipt of `message_id`; returns its count."""
        count = self._counts.get(message_id, 0) + 1
        self._counts[message_id] = count
        if len(self._counts) > self.limit:
            del self._counts[next(iter(self._counts))]
        return count

    def forget(self, message_id: str) -> None:
        self._counts.pop(message_id, None)


def dead_letter_attributes(original: dict[str, str], ours: dict[str, str]) -> dict[str, str]:
    """The message's attributes and ours, within Pub/Sub's 100 attributes: the message's own come first,
    then as many of ours as fit, in their order of importance (the reason first)."""
    merged = dict(original)
    for name, value in ours.items():
        if name in merged or len(merged) < base.PUBSUB_ATTRIBUTE_LIMIT:
            merged[name] = value
    return merged


def deadline_seconds(delay_seconds: float) -> int:
    """An ack deadline (whole seconds, 0-600) for a delay: rounded up, so a sub-second backoff is not a
    retry at once."""
    return math.ceil(min(MAX_ACK_DEADLINE_SECONDS, max(0.0, delay_seconds)))


class PubSubSource:
    name = "pubsub"
    batches_pulls = True  # each receive is a round trip: pull in batches, as the client's flow control does
    retry_holds_delivery = False  # a retry hands the message back to the service (its deadline is the delay)

    def __init__(self, project: str, subscription: str, dead_letter_topic: str) -> None:
        # Made in connect(): grpc.aio binds to the running loop. The publisher exists for dead letters only.
        self._client: SubscriberAsyncClient | None = None
        self._publisher: PublisherAsyncClient | None = None
        self.subscription = SubscriberAsyncClient.subscription_path(project, subscription)
        self.dead_letter_topic = (
            PublisherAsyncClient.topic_path(project, dead_letter_topic) if dead_letter_topic else ""
        )
        self.connected = False  # the last call to the service answered
        self.delivery_limit: int | None = None  # the subscription's dead-letter policy, read at connect
        self._acks = ack_batcher.AckBatcher(self._acknowledge)
        self._receipts = Receipts()
        # Messages handed back for a retry, by id: when their delay ends (monotonic seconds). While one is
        # pending, an empty pull is a subscription whose messages wait out their backoff, not an empty one.
        self._backing_off: dict[str, float] = {}
        self.ack_deadline_seconds = DEFAULT_ACK_DEADLINE_SECONDS  # the subscription's, read at connect

    @property
    def _subscriber(self) -> SubscriberAsyncClient:
        if self._client is None:
            raise RuntimeError("PubSubSource.connect() has not run")
        return self._client

    async def connect(self) -> None:
        self._client = SubscriberAsyncClient()
        if self.dead_letter_topic:
            self._publisher = PublisherAsyncClient()
        try:
            # One try, bounded: the runtime retries with its own backoff and log line.
            subscription = await self._subscriber.get_subscription(
                subscription=self.subscription, timeout=CONNECT_TIMEOUT_SECONDS, retry=None
            )
        except BaseException:
            await self.close()  # the next attempt makes new clients: leave no channel behind
            raise
        self.ack_deadline_seconds = float(subscription.ack_deadline_seconds or DEFAULT_ACK_DEADLINE_SECONDS)
        policy = subscription.dead_letter_policy
        if policy and policy.dead_letter_topic:
            self.delivery_limit = policy.max_delivery_attempts or DEFAULT_POLICY_MAX_DELIVERY_ATTEMPTS
        else:
            log.warning(
                "the subscription has no dead-letter policy: Pub/Sub does not count deliveries, so a message "
                "that kills the worker is redelivered with its count starting again in each new process"
            )
        self.connected = True

    async def receive(self, max_messages: int) -> list[Delivery]:
        # Pull may answer empty before its timeout even with a backlog: ask again until the whole wait has
        # passed, so that [] means "nothing for PULL_TIMEOUT_SECONDS" (the operator reads it as empty).
        deadline = time.monotonic() + PULL_TIMEOUT_SECONDS
        response = None
        while response is None or not response._pb.received_messages:
            if response is not None:
                await asyncio.sleep(EARLY_EMPTY_PAUSE_SECONDS)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            try:
                response = await self._subscriber.pull(
                    subscription=self.subscription, max_messages=max_messages, timeout=remaining, retry=None
                )
            except exceptions.DeadlineExceeded:
                self.connected = True
                return []  # waited the whole time and the subscription had nothing
            except exceptions.GoogleAPICallError as error:
                self.connected = False
                raise ReceiveFailed(f"pull from {self.subscription} failed: {error}") from error
            self.connected = True
        deliveries = []
        # The raw protobuf, not the proto-plus wrapper: each wrapped field access costs microseconds, per
        # message (the client library's own streaming pull does the same on its hot path).
        for received in response._pb.received_messages:
            pubsub_message = received.message
            message_id = pubsub_message.message_id
            receipts = self._receipts.received(message_id)
            self._backing_off.pop(message_id, None)
            message = Message(
                data=pubsub_message.data,
                message_id=message_id,
                # Most messages carry none: dict() of an empty protobuf map still walks the Mapping ABC.
                attributes=dict(pubsub_message.attributes) if len(pubsub_message.attributes) else {},
                delivery_attempt=received.delivery_attempt or receipts,
                ordering_key=pubsub_message.ordering_key,
            )
            deliveries.append(Delivery(message, handle=received.ack_id))
        return deliveries

    async def ack(self, delivery: Delivery) -> bool:
        ok = await self._acks.ack(delivery.handle)
        if ok:
            self._receipts.forget(delivery.message.message_id)
        return ok

    async def _acknowledge(self, ack_ids: list[str]) -> None:
        await self._subscriber.acknowledge(subscription=self.subscription, ack_ids=ack_ids)

    async def _modify_deadline(self, ack_ids: list[str], seconds: float) -> None:
        await self._subscriber.modify_ack_deadline(
            subscription=self.subscription,
            ack_ids=ack_ids,
            ack_deadline_seconds=deadline_seconds(seconds),
        )

    def holds_back(self) -> bool:
        now = time.monotonic()
        for message_id in [m for m, until in self._backing_off.items() if until <= now]:
            del self._backing_off[message_id]
        return bool(self._backing_off)

    async def retry(self, delivery: Delivery, delay_seconds: float) -> None:
        # The message returns when its deadline lapses: the deadline is the retry delay.
        await self._modify_deadline([delivery.handle], delay_seconds)
        if len(self._backing_off) < MAX_TRACKED_RECEIPTS:
            until = time.monotonic() + deadline_seconds(delay_seconds) + PULL_TIMEOUT_SECONDS
            self._backing_off[delivery.message.message_id] = until

    async def release(self, delivery: Delivery) -> None:
        await self._modify_deadline([delivery.handle], 0)

    async def dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        if self._publisher is None:
            raise RuntimeError("no dead-letter topic is configured")
        message = delivery.message
        ours = base.dead_letter_reasons(delivery, self.name, reason, detail, base.PUBSUB_VALUE_LIMIT_BYTES)
        ours.update(tracing.carried())  # a trace context for a message that came without one
        # Attributes as a map, never as keyword arguments: a message may carry any attribute name, such
        # as "ordering_key", "retry" or "timeout", which the client's publish() takes as its own parameters.
        dead = types.PubsubMessage(
            data=message.data, attributes=dead_letter_attributes(message.attributes, ours)
        )
        if len(dead.attributes) < len(message.attributes) + len(ours):
            log.warning("the message has too many attributes for all of our dead-letter reasons")
        await self._publisher.publish(topic=self.dead_letter_topic, messages=[dead], timeout=30)
        await self.ack(delivery)

    async def extend(self, deliveries: list[Delivery], seconds: float) -> int:
        if not deliveries:
            return 0
        await self._modify_deadline([d.handle for d in deliveries], seconds)
        return len(deliveries)

    async def close(self) -> None:
        client, publisher, self._client, self._publisher = self._client, self._publisher, None, None
        if client is not None:
            await client.transport.close()  # type: ignore[no-untyped-call]
        if publisher is not None:
            await publisher.transport.close()  # type: ignore[no-untyped-call]
