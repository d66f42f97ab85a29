"""`make bench-worker`: the worker runtime measured side by side with references, in one run.

1. CPU-bound tasks of mixed duration (20-400 ms of CPU, heavy tail) on all cores: throughput against the
   ideal (cores / mean task CPU time) and against a round-based reference written here the way the
   original design works (pull N, a fresh process per message, wait for the whole round, sleep).
2. No-op async tasks: messages per second against the raw client's own consume-and-ack loop on the same
   broker, for RabbitMQ and for the Pub/Sub emulator. A broker warms up (the emulator is a JVM that gets
   several times faster over its first runs), so a throwaway raw pass goes first, then raw and ours
   alternate for `--rounds` rounds and the medians are compared. Both sides run on the event loop
   `qc-worker` runs by default (uvloop), the raw aio-pika loop too, so the loop is not the difference.
3. Peak RSS of one `qc-worker` process at 64 in flight with 1 KiB messages.
4. Against Celery prefork, on whole processes (`benchmarks.bench_processes`): CPU-bound throughput through
   RabbitMQ with `qc-worker` as its own process, and memory per process slot at concurrency 1, 8, 16.

`--parts` picks some of them (all by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aio_pika
from google.cloud import pubsub_v1

from benchmarks import bench_processes, bench_tasks
from devstack.binaries import REPO_ROOT
from devstack.polling import wait_until, wait_until_async
from devstack.process import free_port
from devstack.services import PubSubEmulator, RabbitMQ
from qc_common import worker_env
from qc_worker.executors import AsyncExecutor, Executor, ProcessExecutor
from qc_worker.metrics import WorkerMetrics
from qc_worker.runtime import Runtime
from qc_worker.settings import WorkerSettings, run_on_event_loop
from qc_worker.sources.base import Source
from qc_worker.sources.memory import MemorySource
from qc_worker.sources.pubsub import PubSubSource
from qc_worker.sources.rabbitmq import RabbitMQSource
from qc_worker.tasks import load_task

CORES = os.cpu_count() or 1
CPU_TASKS = 160
NOOP_MESSAGES = 6000
ROUNDS = 3
TASKS = "benchmarks.bench_tasks"  # the task module, as `qc-worker` and the pool processes import it
# How long one measured pass may take before the run gives up instead of hanging (a pass takes seconds).
PASS_TIMEOUT_SECONDS = 600
PARTS = ("cpu", "rabbitmq", "pubsub", "rss", "celery-cpu", "celery-memory")


def on_worker_loop(main: Coroutine[Any, Any, float]) -> float:
    """Run a side on the loop `qc-worker` runs by default, so both sides of a row share it."""
    return run_on_event_loop(WorkerSettings.event_loop, main)


def cpu_durations(rng: random.Random) -> list[float]:
    """20-400 ms, heavy-tailed (Pareto), mean about 100 ms."""
    return [min(0.4, 0.02 + rng.paretovariate(1.6) * 0.03) for _ in range(CPU_TASKS)]


async def run_runtime(source: Source, task: str, executor: Executor, concurrency: int, done: int) -> float:
    settings = WorkerSettings(task=task, source="rabbitmq", concurrency=concurrency, drain_grace_seconds=30)
    metrics = WorkerMetrics(source.name, task, concurrency)
    runtime = Runtime(settings, load_task(task), source, executor, metrics)
    started = time.perf_counter()
    running = asyncio.create_task(runtime.run())
    labels = {"source": source.name, "task": task}

    async def all_acked() -> bool:  # polling the registry is the measurement: no hook in the hot path
        if running.done():
            running.result()  # raises whatever stopped the runtime early
            raise RuntimeError("the runtime stopped before it acked every message")
        return (metrics.registry.get_sample_value("qc_worker_messages_acked_total", labels) or 0) >= done

    await wait_until_async(
        all_acked, PASS_TIMEOUT_SECONDS, f"{done} messages acked ({task})", interval_seconds=0.005
    )
    elapsed = time.perf_counter() - started
    runtime.request_stop()
    await running
    return elapsed


def round_based(durations: list[float], round_size: int = 8, poll_seconds: float = 0.5) -> float:
    """The original design: pull N, one fresh process each, poll until the whole round is done, sleep 1 s."""
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    for start in range(0, len(durations), round_size):
        processes = [
            context.Process(target=bench_tasks.burn_cpu, args=(d,))
            for d in durations[start : start + round_size]
        ]
        for process in processes:
            process.start()
        wait_until(
            lambda: not any(p.is_alive() for p in processes),  # noqa: B023 (called within this iteration)
            PASS_TIMEOUT_SECONDS,
            "a round of processes to finish",
            interval_seconds=poll_seconds,
        )
        for process in processes:
            process.join()
        time.sleep(1.0)
    return time.perf_counter() - started


def bench_cpu() -> None:
    durations = cpu_durations(random.Random(42))
    ideal = sum(durations) / CORES
    source = MemorySource()
    for d in durations:
        source.put(json.dumps({"cpu_seconds": d}).encode())
    ours = asyncio.run(
        run_runtime(source, f"{TASKS}:cpu_task", ProcessExecutor(CORES), CORES, len(durations))
    )
    rounds = round_based(durations)
    mean_ms = 1000 * sum(durations) / len(durations)
    print(f"\n## CPU-bound: {len(durations)} tasks, mean {mean_ms:.0f} ms CPU (20-400 ms), {CORES} cores")
    print(f"ideal (cores / mean CPU)        {len(durations) / ideal:7.2f} tasks/s")
    for label, seconds in (("qc-worker, continuous window", ours), ("round-based reference", rounds)):
        print(f"{label:<32}{len(durations) / seconds:7.2f} tasks/s   = {ideal / seconds:.2f} of ideal")
    print(f"qc-worker / round-based         {rounds / ours:7.2f}x")


async def raw_rabbitmq(url: str, queue: str, count: int) -> float:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=64)
        declared = await channel.declare_queue(queue, durable=True)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen >= count:
                done.set()

        started = time.perf_counter()
        await declared.consume(on_message)
        await done.wait()
        return time.perf_counter() - started


async def fill_rabbitmq(url: str, queue: str, count: int, size: int = 1024) -> None:
    await fill_bodies(url, queue, [b"x" * size] * count)


async def fill_bodies(url: str, queue: str, bodies: list[bytes]) -> None:
    """Declares `queue` (durable) and publishes `bodies` to it, persistent, with publisher confirms."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        for start in range(0, len(bodies), 500):
            publishes = (
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue
                )
                for body in bodies[start : start + 500]
            )
            await asyncio.gather(*publishes)


def side_by_side(
    title: str,
    labels: tuple[str, str],
    raw: Callable[[str], float],
    ours: Callable[[str], float],
    rounds: int = ROUNDS,
) -> None:
    """Prints the medians of raw and ours over `rounds` alternating rounds, after one throwaway raw warm-up.

    Each callable takes a fresh queue or subscription name and returns the seconds NOOP_MESSAGES took."""
    raw("warm-up")
    raw_runs, our_runs = [], []
    for round_number in range(rounds):
        raw_runs.append(raw(f"raw-{round_number}"))
        our_runs.append(ours(f"ours-{round_number}"))
    raw_seconds, our_seconds = statistics.median(raw_runs), statistics.median(our_runs)
    print(f"\n## {title}; medians of {rounds} alternating rounds after a warm-up)")
    print(f"({bench_processes.priority_note()}; each round's ours / raw: ", end="")
    print(", ".join(f"{r / o:.2f}" for r, o in zip(raw_runs, our_runs, strict=True)) + ")")
    print(f"{labels[0]:<32}{NOOP_MESSAGES / raw_seconds:7.0f} msg/s")
    ratio = raw_seconds / our_seconds
    print(f"{labels[1]:<32}{NOOP_MESSAGES / our_seconds:7.0f} msg/s   = {ratio:.2f} of raw")


def bench_rabbitmq(broker: RabbitMQ, rounds: int) -> None:
    def raw(queue: str) -> float:
        asyncio.run(fill_rabbitmq(broker.amqp_url, queue, NOOP_MESSAGES))
        return on_worker_loop(raw_rabbitmq(broker.amqp_url, queue, NOOP_MESSAGES))

    def ours(queue: str) -> float:
        asyncio.run(fill_rabbitmq(broker.amqp_url, queue, NOOP_MESSAGES))
        source = RabbitMQSource(broker.amqp_url, queue, "", 64)
        return on_worker_loop(run_runtime(source, f"{TASKS}:noop_task", AsyncExecutor(), 64, NOOP_MESSAGES))

    title = f"No-op async tasks, RabbitMQ ({NOOP_MESSAGES} persistent 1 KiB messages, window/prefetch 64"
    side_by_side(title, ("raw aio-pika consume + ack", "qc-worker"), raw, ours, rounds)


def raw_pubsub(subscription: str, count: int) -> float:
    subscriber = pubsub_v1.SubscriberClient()
    seen, started = 0, time.perf_counter()

    def all_acked() -> bool:
        nonlocal seen
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
        ids = [m.ack_id for m in response.received_messages]
        if ids:
            subscriber.acknowledge(subscription=subscription, ack_ids=ids)
        seen += len(ids)
        return seen >= count

    wait_until(all_acked, PASS_TIMEOUT_SECONDS, f"{count} messages pulled and acked", interval_seconds=0)
    elapsed = time.perf_counter() - started
    subscriber.close()
    return elapsed


def bench_pubsub(emulator: PubSubEmulator, rounds: int) -> None:
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()

    def subscription_with_messages(name: str) -> str:
        topic = publisher.topic_path(emulator.project, f"bench-{name}")
        subscription: str = subscriber.subscription_path(emulator.project, f"bench-{name}")
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
        for future in [publisher.publish(topic, b"x" * 1024) for _ in range(NOOP_MESSAGES)]:
            future.result()
        return subscription

    def raw(name: str) -> float:
        return raw_pubsub(subscription_with_messages(name), NOOP_MESSAGES)

    def ours(name: str) -> float:
        subscription_with_messages(name)
        source = PubSubSource(emulator.project, f"bench-{name}", "")
        return on_worker_loop(run_runtime(source, f"{TASKS}:noop_task", AsyncExecutor(), 100, NOOP_MESSAGES))

    title = f"No-op async tasks, Pub/Sub emulator ({NOOP_MESSAGES} 1 KiB messages; raw: pull(100) + ack"
    side_by_side(title, ("raw client pull + ack", "qc-worker (window 100)"), raw, ours, rounds)


def bench_rss(broker: RabbitMQ) -> None:
    asyncio.run(fill_rabbitmq(broker.amqp_url, "rss", 400))
    env = {
        **os.environ,
        worker_env.SOURCE: "rabbitmq",
        worker_env.RABBITMQ_URL: broker.amqp_url,
        worker_env.RABBITMQ_QUEUE: "rss",
        worker_env.TASK: f"{TASKS}:sleepy_task",
        worker_env.CONCURRENCY: "64",
        worker_env.METRICS_PORT: str(free_port()),
        worker_env.LOG_LEVEL: "WARNING",
        "PYTHONPATH": str(REPO_ROOT),  # where `benchmarks.bench_tasks` is found, as an image's task module
    }
    process = subprocess.Popen([str(Path(sys.executable).with_name("qc-worker"))], env=env)
    time.sleep(8)  # the benchmark waits for 400 one-second tasks at 64 in flight: ~7 s of steady load
    status = Path(f"/proc/{process.pid}/status").read_text()
    peak_kib = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    process.terminate()
    process.wait(timeout=60)
    print("\n## Memory: one qc-worker, 64 in flight, 1 KiB messages (RabbitMQ, async tasks)")
    print(f"peak RSS (VmHWM)                {peak_kib / 1024:7.1f} MiB")


def amqp_accepts(broker: RabbitMQ) -> bool:
    try:
        socket.create_connection(("127.0.0.1", broker.amqp_port), timeout=1).close()
        return True
    except OSError:
        return False


def bench_against_celery(broker: RabbitMQ, parts: set[str], rounds: int) -> None:
    # The management API answers (the broker's readiness check) a moment before the AMQP listener does.
    wait_until(lambda: amqp_accepts(broker), 60, "RabbitMQ's AMQP listener")

    def fill(queue: str, bodies: list[bytes]) -> None:
        asyncio.run(fill_bodies(broker.amqp_url, queue, bodies))

    ours = bench_processes.qc_worker_side(broker, fill)
    celery = bench_processes.celery_side(broker, bench_processes.ensure_celery())
    if "celery-cpu" in parts:
        # Ours by default (one message prefetched beyond the window) and with the window alone; Celery.
        window_only = bench_processes.qc_worker_side(broker, fill, prefetch_extra=0)
        sides = [ours, window_only, celery]
        bench_processes.bench_throughput(sides, cpu_durations(random.Random(42)), CORES, rounds)
    if "celery-memory" in parts:
        bench_processes.bench_memory(
            ours, celery, lambda queue: broker.api("DELETE", f"/api/queues/%2F/{queue}")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of the alternating comparisons")
    arguments = parser.parse_args(argv)
    parts = set(arguments.parts)
    if "cpu" in parts:
        bench_cpu()
    with tempfile.TemporaryDirectory() as directory:
        broker, emulator = RabbitMQ(Path(directory) / "rabbitmq"), PubSubEmulator(Path(directory) / "pubsub")
        bench_processes.share_priority(os.getpid())  # a `nice` run: this session, the broker's, the sides'
        broker.start()
        if broker.process is not None and broker.process.popen is not None:
            bench_processes.share_priority(broker.process.popen.pid)
        if "pubsub" in parts:
            emulator.start()
            if emulator.process is not None and emulator.process.popen is not None:
                bench_processes.share_priority(emulator.process.popen.pid)
        try:
            if "rabbitmq" in parts:
                bench_rabbitmq(broker, arguments.rounds)
            if "pubsub" in parts:
                bench_pubsub(emulator, arguments.rounds)
            if "rss" in parts:
                bench_rss(broker)
            if parts & {"celery-cpu", "celery-memory"}:
                bench_against_celery(broker, parts, arguments.rounds)
        finally:
            emulator.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
