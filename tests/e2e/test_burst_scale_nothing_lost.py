"""End to end on real pods: the chart installed with helm runs the operator as a pod (its ServiceAccount,
in-cluster login, probes, resources); workers are pods of the image built from the Dockerfile on the local
node (containerd + kubelet), with the operator's defaults; RabbitMQ and the Pub/Sub emulator.

A burst scales both consumers out from zero; SIGKILLs hit worker containers during the drain (the kubelet
restarts them); the operator scales in while work is still in progress; both go back to zero after the
cooldown. Published = processed (duplicates are reported, not hidden), and every dashboard query returns
data from Prometheus scraping the pods.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.e2e import EndToEnd, RunConfig, RunResult
from devstack.node import Node
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DASHBOARDS = Path(__file__).resolve().parents[2] / "charts/queue-consumer-operator/files/dashboards"
CONFIG = RunConfig(
    messages_per_consumer=600,
    work_seconds=0.2,
    concurrency=4,
    max_replicas=4,
    chaos_kills=2,
    long_tasks=6,
    long_task_seconds=15,
    scale_down_window_seconds=3,
    cooldown_seconds=8,
    timeout_seconds=300,
)


@pytest.fixture(scope="module")
def run(
    node: Node,
    rabbitmq: RabbitMQ,
    pubsub_emulator: PubSubEmulator,
    prometheus: Prometheus,
    helm_binary: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunResult, EndToEnd]]:
    workdir = tmp_path_factory.mktemp("e2e-pods")
    end_to_end = EndToEnd(node, rabbitmq, pubsub_emulator, prometheus, helm_binary, workdir, CONFIG)
    end_to_end.start()
    try:
        result = end_to_end.run()
        for name, consumer in result.consumers.items():
            print(f"{name}: {consumer}")
            changes = [
                (round(s.seconds), s.replicas, s.running_workers, s.processed)
                for s in result.timeline.of(name)
            ]
            print(f"{name} (s, replicas, running, processed): {changes}")
        print(f"kills: {result.kills}; finished in {result.seconds:.0f} s")
        yield result, end_to_end
    finally:
        end_to_end.stop()


def test_burst_scales_out_from_zero_drains_and_returns_to_zero(run: tuple[RunResult, EndToEnd]) -> None:
    result, _ = run
    assert result.finished, f"did not finish within {CONFIG.timeout_seconds} s: {result.consumers}"
    for name, consumer in result.consumers.items():
        assert consumer.scaled_out_after_seconds is not None, f"{name} never scaled out"
        assert consumer.peak_replicas >= 2, f"{name} peaked at {consumer.peak_replicas} replicas"
        assert consumer.drained_after_seconds is not None, f"{name} never drained"
        assert consumer.back_to_zero_after_seconds is not None, f"{name} never went back to zero"
        assert consumer.back_to_zero_after_seconds >= consumer.drained_after_seconds


def test_nothing_is_lost_through_kills_and_scale_down(run: tuple[RunResult, EndToEnd]) -> None:
    result, end_to_end = run
    assert len(result.kills) >= 1, "no worker was killed: the chaos part did not run"
    for name, consumer in result.consumers.items():
        assert consumer.lost == 0, f"{name}: {consumer.lost} messages lost"
        assert consumer.processed == consumer.published == CONFIG.messages_per_consumer
        print(f"{name}: duplicates {consumer.duplicates}")
    # At least one scale-down happened while that consumer still had work to do.
    mid_drain_scale_downs = 0
    for name in result.consumers:
        samples = result.timeline.of(name)
        for before, after in itertools.pairwise(samples):
            if after.replicas < before.replicas and after.processed < CONFIG.messages_per_consumer:
                mid_drain_scale_downs += 1
    assert mid_drain_scale_downs >= 1, "no scale-down happened in the middle of processing"
    # ... and it took idle pods (the deletion cost the operator sets, honoured by the ReplicaSet
    # controller): none of the long tasks at the end of the burst was interrupted and run again.
    for name in result.consumers:
        long_ids = sorted(end_to_end.published[name])[-CONFIG.long_tasks :]
        completions = end_to_end.ledger(name).completions
        assert [completions[i] for i in long_ids] == [1] * CONFIG.long_tasks, f"{name}: {completions}"


def dashboard_queries() -> list[tuple[str, str]]:
    """Every panel's queries (rows' panels included; a row has none itself) and every annotation's."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                queries.append((f"{path.stem}: {panel['title']}", target["expr"]))
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if "expr" in annotation:
                queries.append((f"{path.stem}: annotation {annotation['name']}", annotation["expr"]))
    return queries


def test_every_dashboard_query_returns_data_from_the_run(
    run: tuple[RunResult, EndToEnd], prometheus: Prometheus
) -> None:
    missing = []
    for title, expr in dashboard_queries():
        concrete = expr.replace("$namespace", ".*").replace("$consumer", ".*")
        # Over the whole run: the workers are gone by now (scaled to zero), their series with them.
        if not prometheus.query(f"last_over_time(({concrete})[15m:2s])"):
            missing.append(f"{title}: {concrete}")
    assert not missing, "dashboard queries without data:\n" + "\n".join(missing)


def test_every_metric_a_dashboard_uses_is_exported(
    run: tuple[RunResult, EndToEnd], prometheus: Prometheus
) -> None:
    used = {name for _, expr in dashboard_queries() for name in re.findall(r"\b(qc_[a-z_]+)\b", expr)}
    # Over the whole run: the workers are gone by now (scaled to zero), their series marked stale with them.
    series = prometheus.query('count by (__name__) (last_over_time({__name__=~"qc_.*"}[15m]))')
    exported = {entry["metric"]["__name__"] for entry in series}
    assert used <= exported, f"not exported: {sorted(used - exported)}"
