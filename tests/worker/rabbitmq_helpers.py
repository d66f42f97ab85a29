"""Publishing to and reading from the real RabbitMQ in worker tests, and a node a test may stop and start."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from devstack.services import RabbitMQ

RESTART_TIMEOUT_SECONDS = 90


async def declare(url: str, queue: str, arguments: dict[str, Any] | None = None) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments=arguments)


async def publish_messages(url: str, queue: str, messages: list[aio_pika.Message]) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for message in messages:
            await channel.default_exchange.publish(message, routing_key=queue)


async def take_all(url: str, queue: str, wait_seconds: float = 5) -> list[AbstractIncomingMessage]:
    """Every message now in `queue` (passively: its arguments stay as declared), acked."""
    connection = await aio_pika.connect_robust(url)
    taken = []
    async with connection:
        channel = await connection.channel()
        source = await channel.declare_queue(queue, passive=True)
        while (message := await source.get(fail=False, timeout=wait_seconds)) is not None:
            await message.ack()
            taken.append(message)
    return taken


def take_all_now(url: str, queue: str) -> list[AbstractIncomingMessage]:
    return asyncio.run(take_all(url, queue))


def restart_stopped(broker: RabbitMQ) -> None:
    """Start a node stopped with `broker.stop()` again, on the same name, ports and data."""
    assert broker.process is not None
    broker.process.start()
    broker.process.wait_ready(lambda: bool(broker.api("GET", "/api/overview").get("node")), 90)


def stop_node(broker: RabbitMQ) -> None:
    """Stop the node's processes but keep its ManagedProcess, so `restart_stopped` can start it again."""
    assert broker.process is not None
    process = broker.process
    process.stop()
    broker.process = process
