"""A fleet held to spec.worker.maxMessagesPerSecond while it scales out and in: the real operator
(KopfRunner) on the real apiserver, real `qc-worker` processes as the pods (the stand-in kubelet, which
refreshes their ConfigMap volume in place every few seconds as a kubelet does), the real RabbitMQ.

The replica count is moved by the paused-replicas annotation (2 -> 4 -> 2), so the test decides when the
fleet changes; the operator still orders the share and the scale (`qc_operator.budget`). Every completion
is stamped with its time; every 10 s window of them must stay within 10% above the budget.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import worker_tasks
from kopf.testing import KopfRunner
from kubernetes import client

from devstack.kubelet import LocalKubelet
from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import api
from tests.operator.operator_harness import (
    condition,
    create,
    create_secret,
    get_qc,
    new_namespace,
    queue_consumer,
)
from tests.worker.test_rabbitmq_worker import publish
from tests.worker.worker_harness import QC_WORKER, TASKS_DIR, body

BUDGET_PER_SECOND = 20.0
WINDOW_SECONDS = 10.0
PHASE_SECONDS = 20.0
RunOperator = Callable[..., AbstractContextManager[KopfRunner]]


def stamps(records: Path) -> list[float]:
    times = []
    for path in records.glob("*.log"):
        times += [float(line.split()[1]) for line in path.read_text().splitlines() if line]
    return sorted(times)


def busiest_window(times: list[float], since: float, until: float) -> tuple[float, int]:
    """(start, completions) of the 10 s window with the most completions, over windows inside the span."""
    best = (since, 0)
    inside = [t for t in times if since <= t <= until]
    for start in inside:
        if start + WINDOW_SECONDS > until:
            break
        count = sum(1 for t in inside if start <= t < start + WINDOW_SECONDS)
        best = max(best, (start, count), key=lambda item: item[1])
    return best


@pytest.mark.slow
def test_the_fleet_stays_within_its_budget_through_a_scale_out_and_a_scale_in(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator: RunOperator, tmp_path: Path
) -> None:
    namespace = new_namespace(admin, "rate")
    queue = f"limited-{uuid.uuid4().hex[:6]}"
    # More than the budget lets through in the whole test: the workers are never short of messages.
    total = int(BUDGET_PER_SECOND * PHASE_SECONDS * 4)
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(f"m{i}", sleep=0.05) for i in range(total)]))
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    create_secret(admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": management})
    consumer = queue_consumer("limited", queue, maxReplicas=6, messagesPerReplica=10)
    consumer["metadata"]["annotations"] = {api.PAUSED_REPLICAS_ANNOTATION: "2"}
    consumer["spec"]["worker"].update(
        task="worker_tasks:stamped_async", maxMessagesPerSecond=BUDGET_PER_SECOND
    )
    records = tmp_path / "records"
    records.mkdir()
    kubelet = LocalKubelet(
        admin,
        namespace,
        [QC_WORKER],
        tmp_path / "pods",
        {"PYTHONPATH": str(TASKS_DIR), worker_tasks.RECORDS_DIR_ENV: str(records)},
    )
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    custom = client.CustomObjectsApi(admin)

    def share() -> str:
        found = core.read_namespaced_config_map("limited-worker-rate-limit", namespace)
        return str((found.data or {}).get(api.RATE_LIMIT_KEY))

    def pause_at(replicas: int) -> None:
        patch = {"metadata": {"annotations": {api.PAUSED_REPLICAS_ANNOTATION: str(replicas)}}}
        custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "limited", patch)

    def template_hash() -> str:
        deployment = apps.read_namespaced_deployment("limited-worker", namespace)
        return str(deployment.spec.template.metadata.annotations[api.SPEC_HASH_ANNOTATION])

    kubelet.start()
    try:
        with run_operator():
            create(admin, namespace, consumer)
            wait_until(lambda: kubelet.running_for("limited") == 2, 120, "2 worker pods")
            assert share() == "10"
            wait_until(lambda: len(stamps(records)) >= 20, 60, "the first completions")
            hash_before = template_hash()
            begin = time.time()
            time.sleep(PHASE_SECONDS)

            pause_at(4)  # scale out: the share goes down to 5 first, the pods follow, then 2 more pods
            wait_until(lambda: share() == "5", 30, "the share lowered for 4 pods")
            wait_until(lambda: kubelet.running_for("limited") == 4, 120, "4 worker pods")

            def waited_for_the_share() -> bool:
                events = core.list_namespaced_event(namespace).items
                wanted = "until the running pods apply the share 5 msg/s for 4"
                return any(e.reason == "RateLimited" and wanted in (e.message or "") for e in events)

            wait_until(waited_for_the_share, 30, "the RateLimited Event of the scale-out")
            out_at = time.time()
            time.sleep(PHASE_SECONDS)

            pause_at(2)  # scale in: 2 pods go, then the share rises back to 10
            wait_until(lambda: kubelet.running_for("limited") == 2, 120, "2 worker pods again")
            wait_until(lambda: share() == "10", 60, "the share raised once the 2 pods were gone")
            in_at = time.time()
            time.sleep(PHASE_SECONDS)
            end = time.time()
            assert template_hash() == hash_before, "a share change rolled the pods"
            rate_limited = condition(get_qc(admin, namespace, "limited"), "RateLimited")
            assert rate_limited is not None
            assert (rate_limited["status"], rate_limited["reason"]) == ("False", "WithinBudget")
            assert rate_limited["message"] == "20 msg/s for the fleet, 10 msg/s per pod"
    finally:
        kubelet.stop()

    times = stamps(records)
    limit = BUDGET_PER_SECOND * WINDOW_SECONDS * 1.1
    for name, since, until in (
        ("2 pods", begin, out_at),
        ("scale-out to 4", begin, in_at),
        ("scale-in to 2", out_at, end),
        ("whole run", begin, end),
    ):
        start, count = busiest_window(times, since, until)
        done = sum(1 for t in times if since <= t < until)
        average, at = done / (until - since), start - begin
        print(f"{name}: {average:.1f} msg/s on average; busiest 10 s window: {count} at +{at:.1f} s")
        assert count <= limit, f"{name}: {count} completions in 10 s, above {limit:g}"
    assert sum(1 for t in times if begin <= t < end) > 0
