"""Reading a worker's /metrics as Prometheus would: fetched over HTTP, parsed by prometheus_client.

Used by the worker tests (tests/worker/worker_harness.py) and the end-to-end run (devstack.e2e) to read
what a real `qc-worker` process reports. The text format is parsed by `prometheus_client`'s own parser,
never by hand, so escaping, label order and the `_total` / `_created` samples of counters are handled
the way the exposition format defines them.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

FETCH_TIMEOUT_SECONDS = 5.0


def fetch(url: str, timeout_seconds: float = FETCH_TIMEOUT_SECONDS) -> str:
    """The exposition text served at `url` (e.g. http://127.0.0.1:9100/metrics)."""
    with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
        return bytes(response.read()).decode()


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when there is none).

    `name` is the sample's name, suffix included: `qc_worker_messages_acked_total` for a counter,
    `qc_worker_task_duration_seconds_count` for a histogram's count.
    """
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
