"""Past one operator, on the real apiserver with real `qc-operator run` processes: two shards split the
QueueConsumers with no overlap and no gap, a QueueConsumer moved to another shard by its label is picked
up there once, and two replicas of one shard with kopf peering hand over when the active one is killed.

Who handled a QueueConsumer is read from each process's own /metrics: the reconcile counter has a series
per QueueConsumer the process ticked (a process forgets a QueueConsumer that moved away).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from devstack.process import free_port, stop_process_group
from devstack.services import RabbitMQ
from qc_common import api
from qc_common import metrics as names
from qc_operator.sharding import owner
from tests.operator.operator_harness import (
    create_secret,
    deployment_replicas,
    get_qc,
    new_namespace,
    queue_consumer,
    set_backlog,
)

CONSUMERS = 1000
CREATE_THREADS = 8  # within the client's connection pool (5 per CPU)
PEERING_LIFETIME_SECONDS = 10  # the chart's minimum: the quickest handover after a crash
# The documented bound (README, "Past one operator"): the dead replica's heartbeat runs out (the lifetime),
# then the standby resumes, lists the QueueConsumers, and its daemon ticks (one polling interval).
HANDOVER_BOUND_SECONDS = PEERING_LIFETIME_SECONDS + 20


class Operator:
    """A `qc-operator run` process with its own /metrics port and log file."""

    def __init__(self, kube: KubeControlPlane, log_path: Path, namespace: str | None, **env: str) -> None:
        self.metrics_port = free_port()
        # One namespace where the test allows it: the rest of the session's QueueConsumers (a thousand of
        # them after the split test) are not its business and would only slow it down.
        scope = ["--namespace", namespace] if namespace else ["-A"]
        argv = [
            str(Path(sys.executable).with_name("qc-operator")),
            "run",
            *scope,
            "--liveness",
            f"http://127.0.0.1:{free_port()}/healthz",
        ]
        environment = {
            **os.environ,
            "KUBECONFIG": str(kube.admin_kubeconfig),
            "QC_METRICS_PORT": str(self.metrics_port),
            **env,
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log_path = log_path

    def reconciled(self, namespace: str) -> dict[str, float]:
        """QueueConsumer name -> ticks this process made for it (successful or not)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return {}
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == names.OPERATOR_RECONCILES and sample.labels["namespace"] == namespace:
                    consumer = sample.labels["consumer"]
                    counts[consumer] = counts.get(consumer, 0.0) + sample.value
        return counts

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # a crash: no goodbye in the peering object
        self.process.wait()

    def stop(self) -> None:
        stop_process_group(self.process.pid)


@contextlib.contextmanager
def operators(
    kube: KubeControlPlane,
    log_directory: Path,
    *envs: dict[str, str],
    role: str = "operator",
    namespace: str | None = None,
) -> Iterator[list[Operator]]:
    started: list[Operator] = []
    try:
        for i, env in enumerate(envs):
            started.append(Operator(kube, log_directory / f"{role}-{i}.log", namespace, **env))
        yield started
    finally:
        for one in started:
            one.stop()


def peering_crds() -> list[dict[str, Any]]:
    """kopf's peering CRDs, as the chart installs them (templates/crds/kopf-peerings.yaml)."""
    schema = {
        "type": "object",
        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    return [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{kind.lower()}s.kopf.dev"},
            "spec": {
                "scope": scope,
                "group": "kopf.dev",
                "names": {"kind": kind, "plural": f"{kind.lower()}s", "singular": kind.lower()},
                "versions": [
                    {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
                ],
            },
        }
        for scope, kind in (("Cluster", "ClusterKopfPeering"), ("Namespaced", "KopfPeering"))
    ]


@pytest.fixture
def peering(admin: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(admin)
    for crd in peering_crds():
        with contextlib.suppress(ApiException):  # 409: installed by an earlier test
            extensions.create_custom_resource_definition(crd)
    wait_until(
        lambda: all(
            any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))
            for crd in (
                extensions.read_custom_resource_definition(c["metadata"]["name"]) for c in peering_crds()
            )
        ),
        30,
        "kopf's peering CRDs to be established",
    )


@pytest.fixture
def broker_setup(admin: client.ApiClient, rabbitmq: RabbitMQ) -> tuple[str, str]:
    namespace = new_namespace(admin, "shard")
    queue = f"shard-{namespace}"
    rabbitmq.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
    has_counts = lambda: "messages_ready" in rabbitmq.api("GET", f"/api/queues/%2F/{queue}")  # noqa: E731
    wait_until(has_counts, 15, "the new queue's counts in the management API")
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    create_secret(admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": management})
    return namespace, queue


def create_many(
    admin: client.ApiClient, namespace: str, queue: str, count: int, first: int = 0
) -> dict[str, str]:
    """`count` QueueConsumers polling every 15 s (c<first>, c<first + 1>...), created from a few threads at
    once; name -> uid."""
    custom = client.CustomObjectsApi(admin)

    def create(i: int) -> tuple[str, str]:
        body = queue_consumer(f"c{i:04d}", queue, pollingIntervalSeconds=15)
        created = custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
        return created["metadata"]["name"], created["metadata"]["uid"]

    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        return dict(pool.map(create, range(first, first + count)))


@pytest.mark.timeout(1500)  # 1,000 QueueConsumers through two operators on a shared 2-core machine
@pytest.mark.slow
def test_two_shards_split_a_thousand_queue_consumers_with_no_overlap_and_no_gap(
    admin: client.ApiClient, kube: KubeControlPlane, tmp_path: Path
) -> None:
    # No Secret: every QueueConsumer is handled (Ready=False, SecretMissing, and a tick per interval), but
    # without 4,000 children and 1,000 ReplicaSets, which would make this a benchmark of the apiserver.
    namespace = new_namespace(admin, "shard")
    uids = create_many(admin, namespace, "orders", CONSUMERS)
    shards = [{"QC_SHARD_INDEX": str(i), "QC_SHARD_COUNT": "2"} for i in range(2)]
    with operators(kube, tmp_path, *shards, namespace=namespace) as (zero, one):

        def all_ticked() -> bool:
            return len(set(zero.reconciled(namespace)) | set(one.reconciled(namespace))) == CONSUMERS

        # Polled every 15 s (one polling interval): each poll parses both processes' metrics, 1,000 series.
        wait_until(
            all_ticked, 1200, f"both shards to tick all {CONSUMERS} QueueConsumers", interval_seconds=15
        )
        handled = [set(zero.reconciled(namespace)), set(one.reconciled(namespace))]
        assert not handled[0] & handled[1], "a QueueConsumer handled by both shards"
        assert handled[0] | handled[1] == set(uids), "a QueueConsumer handled by no shard"
        assert min(len(h) for h in handled) > CONSUMERS * 0.4, [len(h) for h in handled]
        for index, names_handled in enumerate(handled):
            assert all(owner(uids[n], {}, 2) == index for n in names_handled), "not the owner by hash"
        print(f"shard 0: {len(handled[0])} QueueConsumers, shard 1: {len(handled[1])}")


@pytest.mark.slow
def test_a_queue_consumer_moved_to_another_shard_by_its_label_is_picked_up_there_once(
    admin: client.ApiClient, kube: KubeControlPlane, tmp_path: Path
) -> None:
    namespace = new_namespace(admin, "shard")
    uids = create_many(admin, namespace, "orders", 6)
    while not any(owner(uid, {}, 2) == 0 for uid in uids.values()):  # 1 in 64: all six hashed to shard 1
        uids |= create_many(admin, namespace, "orders", 1, first=len(uids))
    moved = next(name for name, uid in uids.items() if owner(uid, {}, 2) == 0)
    shards = [{"QC_SHARD_INDEX": str(i), "QC_SHARD_COUNT": "2"} for i in range(2)]
    with operators(kube, tmp_path, *shards, namespace=namespace) as (zero, one):
        wait_until(lambda: moved in zero.reconciled(namespace), 120, "shard 0 to tick its QueueConsumer")
        assert moved not in one.reconciled(namespace)
        # Its label moves it to shard 1: shard 0 lets go (its daemon stops, its series go), shard 1 picks it
        # up, and from then on only shard 1 ticks it.
        labels = {"metadata": {"labels": {api.SHARD_LABEL: "1"}}}
        client.CustomObjectsApi(admin).patch_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, moved, labels
        )
        wait_until(lambda: moved in one.reconciled(namespace), 120, "shard 1 to pick the moved one up")
        wait_until(lambda: moved not in zero.reconciled(namespace), 60, "shard 0 to let the moved one go")
        ticks = one.reconciled(namespace)[moved]
        wait_until(lambda: one.reconciled(namespace)[moved] > ticks, 60, "shard 1 to tick it again")
        assert moved not in zero.reconciled(namespace), "shard 0 still ticks the moved one"
        ready = next(
            c for c in get_qc(admin, namespace, moved)["status"]["conditions"] if c["type"] == "Ready"
        )
        assert ready["reason"] == "SecretMissing", ready


class ReplicaWatch:
    """Every replica count the Deployment is given, from a watch (a thread), while it runs."""

    def __init__(self, admin: client.ApiClient, namespace: str, name: str) -> None:
        self.values: list[int] = []
        self._stream = watch.Watch()  # type: ignore[no-untyped-call]
        apps = client.AppsV1Api(admin)
        selector = f"metadata.name={name}"

        def run() -> None:
            with contextlib.suppress(Exception):  # the stream ends when stopped
                for event in self._stream.stream(  # type: ignore[no-untyped-call]
                    apps.list_namespaced_deployment, namespace, field_selector=selector, timeout_seconds=600
                ):
                    replicas = event["object"].spec.replicas
                    if not self.values or self.values[-1] != replicas:
                        self.values.append(replicas)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stream.stop()  # type: ignore[no-untyped-call]


@pytest.mark.slow
def test_the_standby_replica_takes_over_when_the_active_one_is_killed(
    admin: client.ApiClient,
    kube: KubeControlPlane,
    rabbitmq: RabbitMQ,
    broker_setup: tuple[str, str],
    peering: None,
    tmp_path: Path,
) -> None:
    namespace, queue = broker_setup
    body = queue_consumer("orders", queue, maxReplicas=6, messagesPerReplica=10, pollingIntervalSeconds=2)
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )
    asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 35))
    env = {
        "QC_PEERING": f"failover-{namespace}",
        "QC_PEERING_LIFETIME_SECONDS": str(PEERING_LIFETIME_SECONDS),
    }
    with operators(kube, tmp_path, env) as (active,):
        wait_until(
            lambda: deployment_replicas(admin, namespace, "orders") == 4, 60, "the active to scale to 4"
        )
        with operators(kube, tmp_path, env, role="standby") as (standby,):
            wait_until(lambda: standby.reconciled(namespace) == {} and standby_up(standby), 60, "the standby")
            time.sleep(3 * 2)  # three of its polling intervals: a standby that acted would have ticked
            assert standby.reconciled(namespace) == {}, "the standby acted while the active one ran"
            replicas = ReplicaWatch(admin, namespace, "orders-worker")
            try:
                active.kill()
                killed = time.monotonic()
                wait_until(
                    lambda: standby.reconciled(namespace).get("orders", 0) > 0,
                    HANDOVER_BOUND_SECONDS + 30,
                    "the standby to take over",
                    interval_seconds=0.5,
                )
                handover = time.monotonic() - killed
                ticks = standby.reconciled(namespace)["orders"]
                wait_until(lambda: standby.reconciled(namespace)["orders"] >= ticks + 3, 30, "more ticks")
            finally:
                replicas.stop()
            print(f"handover after the active replica was killed: {handover:.1f} s")
            assert handover <= HANDOVER_BOUND_SECONDS, f"{handover:.1f} s"
            assert replicas.values == [4], f"the replica count moved during the handover: {replicas.values}"


def standby_up(operator: Operator) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5):
            return True
    except OSError:
        return False
