"""`qc-worker`: read the settings, wire the runtime, serve metrics, run until SIGTERM, exit 0 once drained."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys

from pythonjsonlogger.json import JsonFormatter

from qc_common import tls as common_tls
from qc_worker import tracing
from qc_worker.executors import AsyncExecutor, Executor, ProcessExecutor
from qc_worker.metrics import WorkerMetrics
from qc_worker.runtime import Runtime
from qc_worker.server import build_app, start_server
from qc_worker.settings import SettingsError, WorkerSettings, from_args, run_on_event_loop
from qc_worker.sources.base import Source
from qc_worker.tasks import TaskLoadError, TaskSpec, load_task

log = logging.getLogger("qc_worker")
RABBITMQ_CONSUMER_TIMEOUT_SECONDS = 1800  # the broker's default consumer_timeout (30 min)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def check_tls_files(settings: WorkerSettings) -> None:
    """Load amqps://'s CA and client certificate once before starting: files that can never load
    (`common_tls.TlsMaterialError`) end the worker with one line, not a reconnect loop."""
    if settings.source != "rabbitmq" or not settings.rabbitmq_url.startswith("amqps://"):
        return
    try:
        common_tls.client_context(
            ca_file=settings.rabbitmq_ca_file or None,
            cert_file=settings.rabbitmq_client_cert_file or None,
            key_file=settings.rabbitmq_client_key_file or None,
        )
    except common_tls.TlsMaterialError as error:
        files = (
            f"the CA file {settings.rabbitmq_ca_file or '(the system CAs)'}, "
            f"the client certificate file {settings.rabbitmq_client_cert_file or '(none)'}, "
            f"the client key file {settings.rabbitmq_client_key_file or '(none)'}"
        )
        raise common_tls.TlsMaterialError(f"cannot use the TLS files ({files}): {error}") from None


def build_source(settings: WorkerSettings) -> Source:
    if settings.source == "pubsub":
        from qc_worker.sources.pubsub import PubSubSource

        return PubSubSource(
            settings.pubsub_project, settings.pubsub_subscription, settings.pubsub_dead_letter_topic
        )
    from qc_worker.sources.rabbitmq import RabbitMQSource, TlsFiles

    return RabbitMQSource(
        settings.rabbitmq_url,
        settings.rabbitmq_queue,
        settings.rabbitmq_dead_letter_exchange,
        settings.rabbitmq_prefetch,
        declare_queue=settings.rabbitmq_declare_queue,
        queue_arguments=settings.queue_arguments(),
        tls=TlsFiles(
            settings.rabbitmq_ca_file,
            settings.rabbitmq_client_cert_file,
            settings.rabbitmq_client_key_file,
            settings.rabbitmq_server_name,
        ),
    )


def build_executor(task: TaskSpec, settings: WorkerSettings) -> Executor:
    if task.kind == "async":
        return AsyncExecutor()
    processes = math.ceil(settings.concurrency / (task.options.batch_size or 1))
    return ProcessExecutor(processes, settings.max_tasks_per_child, settings.max_memory_per_child_mib)


async def serve(settings: WorkerSettings, task: TaskSpec, traces: tracing.Tracing) -> int:
    """Run until stopped; the exit code: 0, or 1 when the process pool broke (`PoolBroken`)."""
    metrics = WorkerMetrics(settings.source, task.name, settings.concurrency)
    executor = build_executor(task, settings)
    runtime = Runtime(settings, task, build_source(settings), executor, metrics, traces)
    if isinstance(executor, ProcessExecutor):  # a pool that cannot run tasks stops the worker, not a loop
        executor.on_broken = lambda reason: runtime.request_stop()
    if (
        settings.source == "rabbitmq"
        and runtime.limits.time_limit_seconds >= RABBITMQ_CONSUMER_TIMEOUT_SECONDS
    ):
        log.warning(
            "the task time limit reaches RabbitMQ's default consumer_timeout (30 min): raise it on the broker"
        )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runtime.request_stop)
    server = await start_server(build_app(metrics.registry, lambda: runtime.ready), settings.metrics_port)
    try:
        await runtime.run()
    finally:
        await server.cleanup()
    if isinstance(executor, ProcessExecutor) and executor.broken is not None:
        log.error("stopped: %s", executor.broken)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        settings = from_args(argv)
    except SettingsError as error:
        print(f"qc-worker: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    sys.path.insert(0, os.getcwd())  # let "module:function" name a module in the working directory
    try:
        task = load_task(settings.task)
    except TaskLoadError as error:
        log.error("cannot load the task: %s", error)
        return 2
    try:
        check_tls_files(settings)
    except common_tls.TlsMaterialError as error:
        log.error("%s", error)
        return 2
    try:
        traces = tracing.configure(settings.tracing)
    except tracing.TracingUnavailable as error:
        log.error("cannot trace: %s", error)
        return 2
    log.info(
        "starting",
        extra={
            "task": task.name,
            "kind": task.kind,
            "source": settings.source,
            "concurrency": settings.concurrency,
        },
    )
    code = run_on_event_loop(settings.event_loop, serve(settings, task, traces))
    if code == 0:
        log.info("stopped")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
