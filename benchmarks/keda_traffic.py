"""The messages of `make bench-keda` (benchmarks/bench_keda.py): the trace replayed faster, publishing into
the fanout exchange with each id's publish time kept, and the ledger the workers report completions to.

Workers in pods POST each finished id (`devstack.traffic.record_done`) to a URL whose path names their
side; the ledger stamps the first completion of each id per side.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aio_pika
import numpy as np

from devstack import netns, traffic
from qc_operator.simulator import traces


class Ledger:
    """Completions POSTed by the workers (`traffic.record_done`), by side (the URL path) and id, stamped."""

    def __init__(self, sides: Iterable[str]) -> None:
        self.done: dict[str, dict[str, float]] = {side: {} for side in sides}
        lock, done = threading.Lock(), self.done

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stamp = time.time()
                message_id = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with lock:
                    done.setdefault(self.path.strip("/"), {}).setdefault(message_id, stamp)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="ledger", daemon=True).start()

    def url(self, side: str) -> str:
        return f"http://{netns.NODE_ADDRESS}:{self.server.server_address[1]}/{side}"

    def reset(self) -> None:
        for done in self.done.values():
            done.clear()


def compressed_trace(path: Path, speedup: float, peak_rate: float) -> traces.Arrivals:
    """The trace's per-second arrivals, `speedup` times faster and scaled to `peak_rate`, quiet ends cut."""
    arrivals = traces.from_csv(path)
    seconds = math.ceil(len(arrivals) / speedup)
    padded = np.zeros(int(seconds * speedup))
    padded[: len(arrivals)] = arrivals
    per_second = padded.reshape(seconds, -1).mean(axis=1)
    busy = np.nonzero(per_second > 0)[0]
    per_second = per_second[max(0, busy[0] - 10) : busy[-1] + 1]
    scaled: traces.Arrivals = np.round(per_second * peak_rate / per_second.max())
    return scaled


async def publish(
    exchange_name: str,
    amqp_url: str,
    label: str,
    arrivals: traces.Arrivals,
    work_seconds: float,
    published: dict[str, float],
) -> None:
    """Each second's messages into the fanout exchange, confirmed; ids carry their publish time."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name)
        start = time.monotonic()
        for second, count in enumerate(arrivals):
            batch: list[str] = []
            for _ in range(int(count)):
                message_id = f"{label}-{len(published) + len(batch):06d}"
                batch.append(message_id)
            stamp = time.time()
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            traffic.message_body(i, work_seconds),
                            message_id=i,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key="",
                    )
                    for i in batch
                )
            )
            published.update(dict.fromkeys(batch, stamp))
            await asyncio.sleep(max(0.0, start + second + 1 - time.monotonic()))
