"""devstack.scrape: a worker's /metrics read with prometheus_client's parser, summed by name and labels."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devstack import scrape
from devstack.process import free_port


@pytest.fixture
def registry() -> CollectorRegistry:
    """A worker's metrics in miniature, with label values the text format has to escape."""
    registry = CollectorRegistry()
    acked = Counter("qc_worker_messages_acked", "acked", ["source", "task"], registry=registry)
    acked.labels("rabbitmq", "orders.tasks:handle").inc(3)
    acked.labels("rabbitmq", 'odd "task", {with} = signs\\').inc(4)
    failed = Counter("qc_worker_tasks_failed", "failed", ["reason"], registry=registry)
    failed.labels("exception").inc(2)
    failed.labels("crashed").inc(1)
    Gauge("qc_worker_tasks_in_flight", "in flight", registry=registry).set(5)
    duration = Histogram("qc_worker_task_duration_seconds", "duration", registry=registry)
    for seconds in (0.1, 0.2, 3.0):
        duration.observe(seconds)
    return registry


def test_samples_are_summed_by_their_full_name_over_the_matching_labels(registry: CollectorRegistry) -> None:
    text = prometheus_client.generate_latest(registry).decode()
    assert scrape.sample_sum(text, "qc_worker_messages_acked_total") == 7
    assert scrape.sample_sum(text, "qc_worker_messages_acked_total", task='odd "task", {with} = signs\\') == 4
    assert scrape.sample_sum(text, "qc_worker_tasks_failed_total", reason="crashed") == 1
    assert scrape.sample_sum(text, "qc_worker_tasks_failed_total", reason="timeout") == 0
    assert scrape.sample_sum(text, "qc_worker_tasks_in_flight") == 5
    assert scrape.sample_sum(text, "qc_worker_task_duration_seconds_count") == 3
    assert scrape.sample_sum(text, "qc_worker_task_duration_seconds_sum") == pytest.approx(3.3)
    # The family's bare name is no sample of a counter: nothing is counted twice or by prefix.
    assert scrape.sample_sum(text, "qc_worker_messages_acked") == 0


def test_fetch_reads_the_text_a_metrics_endpoint_serves(registry: CollectorRegistry) -> None:
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        text = scrape.fetch(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert scrape.sample_sum(text, "qc_worker_messages_acked_total", task="orders.tasks:handle") == 3
