"""No scaling into a failing downstream, end to end: the real operator (KopfRunner) on the real apiserver,
real `qc-worker` processes as the pods (the stand-in kubelet), the real RabbitMQ.

The task raises while a flag file exists, as writes to a database that is down would. With a deep backlog
the scaler wants more replicas; while the workers' failure ratio (scraped from their metrics) is above
`downstreamProtection.failureRatio` the count is held, the `DownstreamFailing` condition names the reason
and one Warning Event is posted. Once the flag is gone, failures fall and scale-up resumes; every message
is processed in the end (the failed attempts were retried, none dead-lettered).
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
from qc_common import api, worker_env
from tests.operator.operator_harness import (
    condition,
    create,
    create_secret,
    deployment_replicas,
    get_qc,
    new_namespace,
    queue_consumer,
)
from tests.worker.test_rabbitmq_worker import publish
from tests.worker.worker_harness import QC_WORKER, TASKS_DIR, body, completions

RunOperator = Callable[..., AbstractContextManager[KopfRunner]]
HELD_SECONDS = 15.0  # several polling intervals in which the scaler wants more replicas and is held back


@pytest.mark.slow
def test_a_failing_downstream_holds_scale_up_until_it_recovers(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator: RunOperator, tmp_path: Path
) -> None:
    namespace = new_namespace(admin, "downstream")
    queue = f"downstream-{uuid.uuid4().hex[:6]}"
    ids = [f"d{i}" for i in range(400)]
    asyncio.run(publish(rabbitmq.amqp_url, queue, [body(i, sleep=0.05) for i in ids]))
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    create_secret(admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": management})
    consumer = queue_consumer(
        "writer",
        queue,
        maxReplicas=5,
        messagesPerReplica=20,
        pollingIntervalSeconds=3,
        downstreamProtection={"failureRatio": 0.5, "minimumAttempts": 5},
    )
    # Held at one pod while the failures start, so the scaler has their ratio before it may scale.
    consumer["metadata"]["annotations"] = {api.PAUSED_REPLICAS_ANNOTATION: "1"}
    consumer["spec"]["worker"].update(task="worker_tasks:downstream_async", maxDeliveryAttempts=100)
    records, down = tmp_path / "records", tmp_path / "downstream-down"
    records.mkdir()
    down.touch()
    kubelet = LocalKubelet(
        admin,
        namespace,
        [QC_WORKER],
        tmp_path / "pods",
        {
            "PYTHONPATH": str(TASKS_DIR),
            worker_tasks.RECORDS_DIR_ENV: str(records),
            worker_tasks.DOWNSTREAM_FLAG_ENV: str(down),
            # Quick retries: many failed attempts between two scrapes, as under real load.
            worker_env.RETRY_BACKOFF_MIN_SECONDS: "0.1",
            worker_env.RETRY_BACKOFF_MAX_SECONDS: "0.3",
        },
    )
    core = client.CoreV1Api(admin)
    custom = client.CustomObjectsApi(admin)

    def failing() -> dict[str, object] | None:
        found = condition(get_qc(admin, namespace, "writer"), "DownstreamFailing")
        return found if found and found["status"] == "True" else None

    def warnings() -> list[str]:
        events = core.list_namespaced_event(namespace).items
        return [e.message or "" for e in events if e.reason == "DownstreamFailing" and e.type == "Warning"]

    kubelet.start()
    try:
        with run_operator():
            create(admin, namespace, consumer)
            wait_until(lambda: kubelet.running_for("writer") == 1, 120, "1 worker pod")
            wait_until(failing, 60, "the DownstreamFailing condition")
            wait_until(warnings, 30, "the DownstreamFailing Warning Event")
            assert "the workers failed" in warnings()[0]
            assert "exception" in warnings()[0], "the failure reason is named"

            unpause = {"metadata": {"annotations": {api.PAUSED_REPLICAS_ANNOTATION: None}}}
            custom.patch_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, "writer", unpause
            )
            wait_until(
                lambda: "holding 1 replicas instead of" in str((failing() or {}).get("message")),
                30,
                "the scaler to want more replicas and hold at 1",
            )
            held_until = time.monotonic() + HELD_SECONDS
            while time.monotonic() < held_until:
                assert deployment_replicas(admin, namespace, "writer") == 1, (
                    "scaled up into a failing downstream"
                )
                time.sleep(1)
            assert len(warnings()) == 1, "one Warning while it keeps failing, not one per tick"

            down.unlink()  # the downstream is back: failures fall, scale-up resumes
            wait_until(
                lambda: (deployment_replicas(admin, namespace, "writer") or 0) > 1, 60, "scale-up to resume"
            )
            wait_until(lambda: failing() is None, 30, "the condition to clear")
            wait_until(lambda: set(ids) <= set(completions(records)), 120, "every message processed")
    finally:
        kubelet.stop()
    # Nothing dead-lettered, nothing left: the management API's counts lag by a statistics interval.
    wait_until(lambda: rabbitmq.queue_counts(queue)["messages"] == 0, 30, "the queue to be empty")
    assert rabbitmq.queue_counts(f"{queue}.dead")["messages"] == 0, "a message was dead-lettered"
