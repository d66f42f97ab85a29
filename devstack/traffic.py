"""Bursts of uniquely numbered messages for the demo and the end-to-end tests, with their ledger.

Every message body is a JSON object with an `id`; the demo task records each id it finished under a
records directory (one line per completion, appended atomically), so a run can prove that every published
message was processed at least once and count the duplicates instead of hiding them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from google.cloud import pubsub_v1

RECORDS_DIR_ENV = "QC_DEMO_RECORDS_DIR"


def message_body(message_id: str, work_seconds: float) -> bytes:
    return json.dumps({"id": message_id, "work_seconds": work_seconds}).encode()


def record_done(message_id: str) -> None:
    """Called by the demo task when it finished a message (before the ack, so a crash makes a duplicate)."""
    directory = Path(os.environ[RECORDS_DIR_ENV])
    line = f"{message_id}\n".encode()
    fd = os.open(directory / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)  # one short O_APPEND write: never interleaved with another process's line
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Ledger:
    published: frozenset[str]
    completions: Counter[str]

    @property
    def processed(self) -> int:
        return len(self.published & set(self.completions))

    @property
    def lost(self) -> frozenset[str]:
        return self.published - set(self.completions)

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.completions.values() if count > 1)


def read_ledger(published: set[str], records_dir: Path) -> Ledger:
    completions: Counter[str] = Counter()
    for path in records_dir.glob("*.log"):
        completions.update(line for line in path.read_text().splitlines() if line)
    return Ledger(frozenset(published), completions)


async def publish_rabbitmq(amqp_url: str, queue: str, ids: list[str], work_seconds: float) -> None:
    """Publish persistent messages to a durable queue, waiting for the broker's confirms."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        window = 500
        for start in range(0, len(ids), window):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            message_body(i, work_seconds),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=i,
                        ),
                        routing_key=queue,
                    )
                    for i in ids[start : start + window]
                )
            )


def publish_pubsub(topic_path: str, ids: list[str], work_seconds: float) -> None:
    publisher = pubsub_v1.PublisherClient()
    futures = [publisher.publish(topic_path, message_body(i, work_seconds)) for i in ids]
    for future in futures:
        future.result(timeout=60)
