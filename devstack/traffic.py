"""Bursts of uniquely numbered messages for the demo and the end-to-end tests, with their ledger.

Every message body is a JSON object with an `id`; the demo task records each id it finished, so a run
can prove that every published message was processed at least once and count the duplicates instead of
hiding them. Workers on the host append to files in a records directory (one line per completion, written
atomically); workers in pods, whose file systems the host does not share, POST each id to a
`LedgerServer` (on 127.0.0.1, reached from the pods at the node's address).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aio_pika
from google.cloud import pubsub_v1

RECORDS_DIR_ENV = "QC_DEMO_RECORDS_DIR"
RECORDS_URL_ENV = "QC_DEMO_RECORDS_URL"
RECORD_TIMEOUT_SECONDS = 10.0


def message_body(message_id: str, work_seconds: float) -> bytes:
    return json.dumps({"id": message_id, "work_seconds": work_seconds}).encode()


def record_done(message_id: str) -> None:
    """Called by the demo task when it finished a message (before the ack, so a crash makes a duplicate)."""
    url = os.environ.get(RECORDS_URL_ENV)
    if url:
        request = urllib.request.Request(url, data=message_id.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=RECORD_TIMEOUT_SECONDS) as response:
            response.read()
        return
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


class LedgerServer:
    """Counts the ids POSTed by workers in pods; `ledger(published)` reads it like `read_ledger`."""

    def __init__(self) -> None:
        self.completions: Counter[str] = Counter()
        lock = threading.Lock()
        completions = self.completions

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                message_id = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with lock:
                    completions[message_id] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self._lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="ledger", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ledger(self, published: set[str]) -> Ledger:
        with self._lock:
            return Ledger(frozenset(published), Counter(self.completions))


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
