"""Tracing's switch and set-up, without a broker: off by default, the worker runs (and never imports
OpenTelemetry) when the packages are missing, a clear error when it is asked for without them, and the
exporters OTEL_TRACES_EXPORTER names."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import textwrap

import pytest
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from qc_common import worker_env
from qc_worker import tracing
from qc_worker.settings import from_args

# A child interpreter where `import opentelemetry...` fails, as in an image installed without the extra.
WITHOUT_OPENTELEMETRY = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys

    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Missing())
    from qc_worker import tracing
    from qc_worker.executors import AsyncExecutor
    from qc_worker.metrics import WorkerMetrics
    from qc_worker.runtime import Runtime
    from qc_worker.settings import WorkerSettings
    from qc_worker.sources.memory import MemorySource
    from qc_worker.tasks import load_task

    async def main():
        source = MemorySource()
        settings = WorkerSettings(task="worker_tasks:work_async", source="rabbitmq")
        runtime = Runtime(settings, load_task(settings.task), source, AsyncExecutor(),
                          WorkerMetrics("memory", settings.task, 8), tracing.configure(settings.tracing))
        source.put(b'{"id": "a"}')
        source.put(b'{"id": "b", "fail": "always"}')
        running = asyncio.create_task(runtime.run())
        while not (source.acked and source.retried):
            await asyncio.sleep(0.01)
        runtime.request_stop()
        await running
        print("acked", source.acked, "retried", len(source.retried) > 0)
        print("opentelemetry imported:", any(m.startswith("opentelemetry") for m in sys.modules))
        try:
            tracing.configure(True)
        except tracing.TracingUnavailable as error:
            print("asked for:", error)

    asyncio.run(main())
    """
)


def test_tracing_is_off_by_default_and_switched_on_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--task", "m:f", "--source", "pubsub", "--pubsub-project", "p", "--pubsub-subscription", "s"]
    assert from_args(base).tracing is False
    monkeypatch.setenv(worker_env.TRACING, "true")
    assert from_args(base).tracing is True
    assert isinstance(tracing.configure(False), tracing.Tracing)
    assert not isinstance(tracing.configure(False), tracing.OpenTelemetryTracing)


def test_the_worker_runs_without_opentelemetry_and_asking_for_traces_says_what_to_install() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": "tests/worker:.", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "acked ['m0'] retried True" in lines
    assert "opentelemetry imported: False" in lines
    assert any(
        line.startswith("asked for:") and "pip install 'queue-consumer-operator[tracing]'" in line
        for line in lines
    ), lines


def test_the_exporters_come_from_otel_traces_exporter(caplog: pytest.LogCaptureFixture) -> None:
    assert tracing.exporters_from_environment({"OTEL_TRACES_EXPORTER": "none"}) == []
    [console] = tracing.exporters_from_environment({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(console, ConsoleSpanExporter)
    with pytest.raises(tracing.TracingUnavailable, match="OTEL_TRACES_EXPORTER='zipkin'"):
        tracing.exporters_from_environment({"OTEL_TRACES_EXPORTER": "console,zipkin"})
    # The default is OTLP, whose exporter is a package of its own (not a dependency of ours).
    try:
        installed = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
    except ModuleNotFoundError:  # not even the namespace package
        installed = False
    with caplog.at_level(logging.WARNING, logger="qc_worker.tracing"):
        exporters = tracing.exporters_from_environment({})
    if installed:
        assert len(exporters) == 1
    else:
        assert exporters == []
        assert "install opentelemetry-exporter-otlp-proto-http" in caplog.text
