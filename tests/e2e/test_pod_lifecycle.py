"""What only real pods show: the ReplicaSet's choice on scale-in, the kubelet's SIGTERM, readiness, OOM kills.

The operator runs as the chart's pod; each QueueConsumer here holds its replicas with the paused-replicas
annotation, so the test decides when to scale and the operator still does the scaling (deletion costs
first, then the Deployment's replicas), as it does for its own decisions.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from devstack import image, netns, traffic
from devstack.e2e import create_rabbitmq_secret, install_chart, is_ready, wait_for_operator
from devstack.node import Node
from devstack.services import RabbitMQ
from qc_common import api, metrics

NAMESPACE = "lifecycle"
SECRET_URL = {"name": "rabbitmq", "key": "url"}
SECRET_MANAGEMENT_URL = {"name": "rabbitmq", "key": "managementUrl"}
MEMORY_LIMIT = {"requests": {"memory": "256Mi"}, "limits": {"memory": "256Mi"}}


class Lifecycle:
    def __init__(self, core: Any, custom: Any, rabbitmq: RabbitMQ, ledger: traffic.LedgerServer) -> None:
        self.core, self.custom, self.rabbitmq, self.ledger = core, custom, rabbitmq, ledger

    def consumer(self, name: str, queue: str, task: str, replicas: int, **worker: Any) -> None:
        self.rabbitmq.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
        records = {
            "name": traffic.RECORDS_URL_ENV,
            "value": f"http://{netns.NODE_ADDRESS}:{self.ledger.port}/",
        }
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": name, "annotations": {api.PAUSED_REPLICAS_ANNOTATION: str(replicas)}},
            "spec": {
                "source": {
                    "rabbitmq": {
                        "queue": queue,
                        "connectionSecretRef": SECRET_URL,
                        "managementSecretRef": SECRET_MANAGEMENT_URL,
                    }
                },
                "worker": {
                    "image": image.DEMO_WORKER_IMAGE,
                    "imagePullPolicy": "Never",
                    "task": task,
                    "env": [records],
                    **worker,
                },
                "scaling": {"minReplicas": 0, "maxReplicas": 5, "pollingIntervalSeconds": 1},
            },
        }
        self.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, body)

    def hold(self, name: str, replicas: int) -> None:
        patch = {"metadata": {"annotations": {api.PAUSED_REPLICAS_ANNOTATION: str(replicas)}}}
        self.custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, name, patch)

    def pods(self, consumer: str) -> list[Any]:
        selector = f"{api.CONSUMER_LABEL}={consumer}"
        return list(self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)

    def publish(self, queue: str, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            message = {
                "properties": {"delivery_mode": 2},
                "routing_key": queue,
                "payload": json.dumps(body),
                "payload_encoding": "string",
            }
            self.rabbitmq.api("POST", "/api/exchanges/%2F/amq.default/publish", message)


def wait_until(condition: Callable[[], Any], timeout_seconds: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")


def in_flight(pod: Any) -> float:
    url = f"http://{pod.status.pod_ip}:{api.WORKER_METRICS_PORT}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            lines = response.read().decode().splitlines()
    except OSError:
        return 0.0
    name = metrics.WORKER_TASKS_IN_FLIGHT
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name))


def readyz_status(pod: Any) -> int:
    try:
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:{api.WORKER_METRICS_PORT}/readyz") as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture(scope="module")
def lifecycle(
    node: Node, rabbitmq: RabbitMQ, helm_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lifecycle]:
    with config.new_client_from_config(config_file=str(node.kube.admin_kubeconfig)) as api_client:
        core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
        install_chart(helm_binary, node.kube.admin_kubeconfig, tmp_path_factory.mktemp("lifecycle"))
        wait_for_operator(core)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        create_rabbitmq_secret(core, NAMESPACE, rabbitmq)
        ledger = traffic.LedgerServer()
        ledger.start()
        try:
            yield Lifecycle(core, custom, rabbitmq, ledger)
        finally:
            core.delete_namespace(NAMESPACE)
            ledger.stop()


def test_scale_in_takes_idle_pods_first_and_a_busy_pod_drains_out_of_ready(lifecycle: Lifecycle) -> None:
    name, queue = "idle-first", f"idle-first-{uuid.uuid4().hex[:6]}"
    lifecycle.consumer(
        name,
        queue,
        "devstack.demo_tasks:process",
        3,
        concurrency=1,
        taskTimeLimitSeconds=60,
        drainGraceSeconds=45,
    )
    wait_until(lambda: sum(is_ready(p) for p in lifecycle.pods(name)) == 3, 180, "3 ready worker pods")
    ids = [f"{queue}-{i}" for i in range(2)]
    lifecycle.publish(queue, [{"id": i, "work_seconds": 25} for i in ids])

    def busy_pods() -> set[str]:
        names = {p.metadata.name for p in lifecycle.pods(name) if in_flight(p) >= 1}
        return names if len(names) == 2 else set()

    busy = wait_until(busy_pods, 60, "both long tasks to start")
    (idle,) = {p.metadata.name for p in lifecycle.pods(name)} - busy

    # 3 -> 2: the ReplicaSet deletes the pod the operator priced lowest, the idle one.
    lifecycle.hold(name, 2)
    wait_until(lambda: idle not in {p.metadata.name for p in lifecycle.pods(name)}, 60, "the idle pod to go")
    assert {p.metadata.name for p in lifecycle.pods(name)} == busy

    # 2 -> 1: a busy pod must go. The kubelet's SIGTERM starts the drain: the worker stops pulling and
    # answers /readyz with 503, so the pod leaves Ready while its task runs on to the end.
    lifecycle.hold(name, 1)
    leaving = wait_until(
        lambda: [p for p in lifecycle.pods(name) if p.metadata.deletion_timestamp],
        60,
        "a busy pod to be deleted",
    )[0]
    assert leaving.metadata.name in busy
    wait_until(lambda: readyz_status(leaving) == 503, 20, "the draining worker's /readyz to answer 503")
    pod_name = leaving.metadata.name
    wait_until(
        lambda: not any(is_ready(p) for p in lifecycle.pods(name) if p.metadata.name == pod_name),
        30,
        "the draining pod to leave Ready",
    )

    # Both tasks finish, each once: no task was cut off, nothing went back to the queue.
    wait_until(lambda: lifecycle.ledger.ledger(set(ids)).processed == 2, 90, "both long tasks to finish")
    wait_until(lambda: pod_name not in {p.metadata.name for p in lifecycle.pods(name)}, 60, "the pod to exit")
    assert lifecycle.ledger.ledger(set(ids)).duplicates == 0
    counts = wait_until(
        lambda: (c := lifecycle.rabbitmq.queue_counts(queue)) and c["messages"] == 0 and c,
        30,
        "the queue to be empty",
    )
    assert counts["messages_unacknowledged"] == 0


def oom_kills(node: Node, pods: list[Any]) -> int:
    """OOM kills the kernel counted in these pods' memory cgroups (v1: `oom_kill` in memory.oom_control)."""
    root = Path("/sys/fs/cgroup/memory", node.cgroup_root.lstrip("/"))
    total = 0
    for pod in pods:  # the kill is counted in the cgroup that hit its limit: the container's, below the pod's
        for pod_dir in root.rglob(f"pod{pod.metadata.uid}"):
            for control in pod_dir.rglob("memory.oom_control"):
                fields = dict(line.split() for line in control.read_text().splitlines())
                total += int(fields.get("oom_kill", 0))
    return total


def test_task_past_the_memory_limit_is_oom_killed_then_dead_lettered_as_crashed(
    lifecycle: Lifecycle, node: Node
) -> None:
    name, queue = "hog", f"hog-{uuid.uuid4().hex[:6]}"
    lifecycle.consumer(
        name,
        queue,
        "devstack.demo_tasks:hog",
        2,
        concurrency=2,
        maxDeliveryAttempts=3,
        resources=MEMORY_LIMIT,
    )
    wait_until(lambda: sum(is_ready(p) for p in lifecycle.pods(name)) == 2, 180, "2 ready worker pods")
    hog_id, normal_ids = f"{queue}-hog", [f"{queue}-{i}" for i in range(10)]
    lifecycle.publish(queue, [{"id": hog_id, "allocate_mib": 512}])
    lifecycle.publish(queue, [{"id": i, "work_seconds": 1} for i in normal_ids])

    def dead_letters() -> list[dict[str, Any]]:
        peek = {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}
        try:
            return list(lifecycle.rabbitmq.api("POST", f"/api/queues/%2F/{queue}.dead/get", peek))
        except urllib.error.HTTPError:  # the worker declares the dead-letter queue when it first needs it
            return []

    (dead,) = wait_until(dead_letters, 240, "the hog to be dead-lettered")
    headers = dead["properties"]["headers"]
    assert json.loads(dead["payload"])["id"] == hog_id
    assert headers["qc-dead-letter-reason"] == "crashed", headers
    pods = lifecycle.pods(name)
    assert oom_kills(node, pods) >= 3, "each of the 3 attempts should have met the kernel's OOM killer"
    # The OOM killer took the task's process, not the worker: the pods kept running, the rest was done.
    wait_until(lambda: lifecycle.ledger.ledger(set(normal_ids)).processed == 10, 60, "the other messages")
    assert lifecycle.ledger.ledger({hog_id}).processed == 0
    assert all(s.restart_count == 0 for p in pods for s in p.status.container_statuses)
