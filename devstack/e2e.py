"""The end-to-end run behind `make demo` and tests/e2e: the whole product on real pods on the local node.

The chart is installed with helm as users install it, only its image pointed at the one built from the
Dockerfile (devstack/image.py): the operator runs as a pod with the chart's ServiceAccount, in-cluster
login, probes and resources. Two QueueConsumers — RabbitMQ, and Pub/Sub on the emulator — get a burst of
messages; their workers are real pods of the demo's worker image (the project's image plus the task
module) with the operator's defaults. Pods reach every service at the node's address (devstack/netns.py);
Prometheus scrapes the operator and every worker pod at their pod IPs. Chaos SIGKILLs worker containers
through containerd mid-drain; the kubelet restarts them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import pubsub_v1
from kubernetes import client, config

from devstack import image, netns, traffic
from devstack.binaries import REPO_ROOT
from devstack.monitoring_standin import MonitoringStandIn
from devstack.node import Node
from devstack.process import free_port
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ
from devstack.timeline import Sample, Timeline
from qc_common import api, worker_env

NAMESPACE, RELEASE, RELEASE_NAMESPACE = "demo", "qc", "qc-system"
RABBITMQ_CONSUMER, PUBSUB_CONSUMER = "orders", "thumbnails"
CHART = REPO_ROOT / "charts/queue-consumer-operator"
OPERATOR_METRICS_PORT = 9090  # the chart's operator.metricsPort
START_TIMEOUT_SECONDS = 180.0
# The image every user builds and pushes; here it is in the node's containerd already, so never pulled.
CHART_IMAGE_VALUES = (
    "image.repository=localhost/queue-consumer-operator",
    "image.tag=dev",
    "image.pullPolicy=Never",
)


@dataclass(frozen=True)
class RunConfig:
    messages_per_consumer: int = 600
    work_seconds: float = 0.25
    concurrency: int = 4
    max_replicas: int = 6
    chaos_kills: int = 3  # SIGKILLs of random worker containers while the backlog drains
    # The burst ends with this many long tasks: replicas go idle while a few still work, so the operator
    # scales in mid-processing, and the ReplicaSet must pick the idle pods (deletion cost).
    long_tasks: int = 0
    long_task_seconds: float = 15.0
    polling_interval_seconds: int = 1
    scale_down_window_seconds: int = 5
    cooldown_seconds: int = 10
    timeout_seconds: float = 300.0


@dataclass
class ConsumerResult:
    published: int
    processed: int
    lost: int
    duplicates: int
    peak_replicas: int
    scaled_out_after_seconds: float | None
    drained_after_seconds: float | None
    back_to_zero_after_seconds: float | None


@dataclass
class RunResult:
    consumers: dict[str, ConsumerResult]
    kills: list[tuple[float, str]]
    timeline: Timeline
    finished: bool
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class EndToEnd:
    def __init__(
        self,
        node: Node,
        rabbitmq: RabbitMQ,
        pubsub: PubSubEmulator,
        prometheus: Prometheus,
        helm: Path,
        workdir: Path,
        run: RunConfig,
    ) -> None:
        self.node, self.kube = node, node.kube
        self.rabbitmq, self.pubsub, self.prometheus = rabbitmq, pubsub, prometheus
        self.helm, self.workdir, self.config = helm, workdir, run
        self.queue = "orders-on-pods"
        self.topic_id = "thumbnails-on-pods"
        self.topic = f"projects/{pubsub.project}/topics/{self.topic_id}"
        self.published: dict[str, dict[str, float]] = {RABBITMQ_CONSUMER: {}, PUBSUB_CONSUMER: {}}
        self.admin: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kube.admin_kubeconfig)
        )
        self.core: Any = client.CoreV1Api(self.admin)
        self.ledger_server = traffic.LedgerServer()
        self.standin = MonitoringStandIn(free_port(), self._pubsub_backlog)
        self.rng = random.Random(7)

    # --- set-up ---
    def start(self) -> None:
        install_chart(self.helm, self.kube.admin_kubeconfig, self.workdir)
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        create_rabbitmq_secret(self.core, NAMESPACE, self.rabbitmq)
        self.rabbitmq.api("PUT", f"/api/queues/%2F/{self.queue}", {"durable": True})
        os.environ["PUBSUB_EMULATOR_HOST"] = self.pubsub.host
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        publisher.create_topic(name=self.topic)
        publisher.create_topic(name=f"{self.topic}-dead")
        subscription = f"projects/{self.pubsub.project}/subscriptions/{self.topic_id}"
        subscriber.create_subscription(name=subscription, topic=self.topic, ack_deadline_seconds=10)
        subscriber.close()
        self.standin.start()
        self.ledger_server.start()
        operator_ip = wait_for_operator(self.core)
        self.prometheus.add_target(
            "operator-pod", f"{operator_ip}:{OPERATOR_METRICS_PORT}", {"job_name": "operator"}
        )
        custom = client.CustomObjectsApi(self.admin)
        for body in (self._rabbitmq_consumer(), self._pubsub_consumer()):
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, body)

    def _scaling(self) -> dict[str, Any]:
        c = self.config
        return {
            "minReplicas": 0,
            "maxReplicas": c.max_replicas,
            "pollingIntervalSeconds": c.polling_interval_seconds,
            "cooldownSeconds": c.cooldown_seconds,
            "messagesPerReplica": 50,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": c.scale_down_window_seconds}},
        }

    def _worker(self, extra_env: list[dict[str, str]]) -> dict[str, Any]:
        records = f"http://{netns.NODE_ADDRESS}:{self.ledger_server.port}/"
        return {
            "image": image.DEMO_WORKER_IMAGE,
            "imagePullPolicy": "Never",
            "task": "devstack.demo_tasks:process",
            "concurrency": self.config.concurrency,
            "taskTimeLimitSeconds": 30,
            "drainGraceSeconds": 20,
            "env": [{"name": traffic.RECORDS_URL_ENV, "value": records}, *extra_env],
        }

    def _rabbitmq_consumer(self) -> dict[str, Any]:
        source = {
            "queue": self.queue,
            "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
            "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"},
        }
        return {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": RABBITMQ_CONSUMER},
            "spec": {"source": {"rabbitmq": source}, "worker": self._worker([]), "scaling": self._scaling()},
        }

    def _pubsub_consumer(self) -> dict[str, Any]:
        standin_port = self.standin.server.server_address[1]
        source = {
            "project": self.pubsub.project,
            "subscription": self.topic_id,
            "deadLetterTopic": f"{self.topic_id}-dead",
            "monitoringEndpoint": f"http://{netns.NODE_ADDRESS}:{standin_port}",
            "unauthenticatedMonitoring": True,  # the stand-in is not Google's: no credentials to send
        }
        env = [
            {"name": "PUBSUB_EMULATOR_HOST", "value": f"{netns.NODE_ADDRESS}:{self.pubsub.port}"},
            {"name": worker_env.LEASE_SECONDS, "value": "10"},
        ]
        return {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": PUBSUB_CONSUMER},
            "spec": {"source": {"pubsub": source}, "worker": self._worker(env), "scaling": self._scaling()},
        }

    # --- traffic and observation ---
    def publish_burst(self) -> None:
        c = self.config
        short = c.messages_per_consumer - c.long_tasks
        now = time.time()
        for first, count, work in ((0, short, c.work_seconds), (short, c.long_tasks, c.long_task_seconds)):
            ids = {name: [f"{name}-{i:05d}" for i in range(first, first + count)] for name in self.published}
            rabbitmq_ids = ids[RABBITMQ_CONSUMER]
            asyncio.run(traffic.publish_rabbitmq(self.rabbitmq.amqp_url, self.queue, rabbitmq_ids, work))
            traffic.publish_pubsub(self.topic, ids[PUBSUB_CONSUMER], work)
            for name, batch in ids.items():
                self.published[name].update(dict.fromkeys(batch, now))

    def ledger(self, consumer: str) -> traffic.Ledger:
        return self.ledger_server.ledger(set(self.published[consumer]))

    def _rabbitmq_backlog(self) -> float | None:
        try:
            counts = self.rabbitmq.queue_counts(self.queue)
        except Exception:  # statistics not refreshed yet
            return None
        return float(counts["messages_ready"] + counts["messages_unacknowledged"])

    def _pubsub_backlog(self, subscription: str) -> tuple[int, float]:
        ledger = self.ledger(PUBSUB_CONSUMER)
        waiting = [self.published[PUBSUB_CONSUMER][i] for i in ledger.lost]
        return len(waiting), (time.time() - min(waiting)) if waiting else 0.0

    def worker_pods(self, consumer: str | None = None) -> list[Any]:
        """Worker pods that run and are not being deleted."""
        selector = api.CONSUMER_LABEL if consumer is None else f"{api.CONSUMER_LABEL}={consumer}"
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        return [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]

    def sample(self, seconds: float) -> list[Sample]:
        apps: Any = client.AppsV1Api(self.admin)
        custom: Any = client.CustomObjectsApi(self.admin)
        samples = []
        pods = self.worker_pods()
        for consumer in self.published:
            try:
                deployment: Any = apps.read_namespaced_deployment(f"{consumer}-worker", NAMESPACE)
                replicas = int(deployment.spec.replicas or 0)
                ready = int(deployment.status.ready_replicas or 0)
            except client.ApiException:
                replicas = ready = 0
            qc = custom.get_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, consumer)
            status = qc.get("status") or {}
            backlog = (
                self._rabbitmq_backlog() if consumer == RABBITMQ_CONSUMER else self._pubsub_backlog("")[0]
            )
            running = sum(1 for p in pods if p.metadata.labels.get(api.CONSUMER_LABEL) == consumer)
            samples.append(
                Sample(
                    seconds,
                    consumer,
                    backlog,
                    status.get("desiredReplicas"),
                    replicas,
                    ready,
                    running,
                    self.ledger(consumer).processed,
                )
            )
        for pod in pods:
            consumer = pod.metadata.labels.get(api.CONSUMER_LABEL, "")
            self.prometheus.add_target(
                f"worker-{pod.metadata.name}",
                f"{pod.status.pod_ip}:{api.WORKER_METRICS_PORT}",
                {"namespace": NAMESPACE, "consumer": consumer, "pod": pod.metadata.name},
            )
        return samples

    def kill_random_container(self) -> str | None:
        """SIGKILL the container of one running worker pod through containerd; the kubelet restarts it."""
        candidates = [p for p in self.worker_pods() if p.status.container_statuses]
        if not candidates:
            return None
        victim = self.rng.choice(candidates)
        container_id = victim.status.container_statuses[0].container_id.removeprefix("containerd://")
        result = self.node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
        return str(victim.metadata.name) if result.returncode == 0 else None

    def run(self, on_sample: Callable[[list[Sample]], None] | None = None) -> RunResult:
        timeline, kills = Timeline(), []
        started = time.monotonic()
        self.publish_burst()
        total = sum(len(p) for p in self.published.values())
        kill_at = sorted(self.rng.uniform(0.25, 0.75) for _ in range(self.config.chaos_kills))
        finished = False
        while time.monotonic() - started < self.config.timeout_seconds:
            seconds = time.monotonic() - started
            samples = self.sample(seconds)
            for sample in samples:
                timeline.add(sample)
            if on_sample is not None:
                on_sample(samples)
            done = sum(s.processed for s in samples)
            if kill_at and done >= kill_at[0] * total:  # chaos while the backlog drains
                kill_at.pop(0)
                victim = self.kill_random_container()
                if victim is not None:
                    kills.append((seconds, victim))
            if done >= total and all(s.replicas == 0 and s.running_workers == 0 for s in samples):
                finished = True
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        return RunResult(self._results(timeline), kills, timeline, finished, elapsed)

    def _results(self, timeline: Timeline) -> dict[str, ConsumerResult]:
        results = {}
        for consumer in self.published:
            ledger = self.ledger(consumer)
            count = len(self.published[consumer])
            drained = timeline.first_time(consumer, lambda s, n=count: s.processed >= n)
            zero = None
            if drained is not None:
                zero = next(
                    (
                        s.seconds
                        for s in timeline.of(consumer)
                        if s.seconds >= drained and s.replicas == 0 and s.running_workers == 0
                    ),
                    None,
                )
            results[consumer] = ConsumerResult(
                len(ledger.published),
                ledger.processed,
                len(ledger.lost),
                ledger.duplicates,
                timeline.max_replicas(consumer),
                timeline.first_time(consumer, lambda s: s.replicas > 0),
                drained,
                zero,
            )
        return results

    def save_operator_log(self) -> Path:
        """The operator pod's log, kept under the run's directory (pods and their logs go at teardown)."""
        path = self.workdir / "operator-pod.log"
        with contextlib.suppress(Exception):
            for pod in self.core.list_namespaced_pod(RELEASE_NAMESPACE).items:
                path.write_text(self.core.read_namespaced_pod_log(pod.metadata.name, RELEASE_NAMESPACE))
        return path

    def stop(self) -> None:
        self.save_operator_log()
        with contextlib.suppress(Exception):  # workers first, so none is left consuming
            self.core.delete_namespace(NAMESPACE)
        self.standin.stop()
        self.ledger_server.stop()
        self.admin.close()  # type: ignore[no-untyped-call]


def install_chart(helm: Path, kubeconfig: Path, workdir: Path) -> None:
    """`helm upgrade --install` as a user runs it, the image pointed at the one the node has."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": str(workdir / "helm")}
    sets = [arg for value in CHART_IMAGE_VALUES for arg in ("--set", value)]
    subprocess.run(
        [
            str(helm),
            "upgrade",
            "--install",
            RELEASE,
            str(CHART),
            "-n",
            RELEASE_NAMESPACE,
            "--create-namespace",
            *sets,
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=180,
    )


def create_rabbitmq_secret(core: Any, namespace: str, rabbit: RabbitMQ) -> None:
    """Secret `rabbitmq` (keys url, managementUrl) with the broker at the node's address, as pods see it."""
    node = netns.NODE_ADDRESS
    secret = {
        "url": f"amqp://{rabbit.user}:{rabbit.password}@{node}:{rabbit.amqp_port}/",
        "managementUrl": f"http://{rabbit.user}:{rabbit.password}@{node}:{rabbit.management_port}",
    }
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "rabbitmq"}, "data": data})


def wait_for_operator(core: Any) -> str:
    """The operator pod's IP once its readiness probe passes."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for pod in core.list_namespaced_pod(RELEASE_NAMESPACE).items:
            if is_ready(pod):
                return str(pod.status.pod_ip)
        time.sleep(1)
    pods = core.list_namespaced_pod(RELEASE_NAMESPACE).items
    raise TimeoutError(f"the operator pod was not Ready in {START_TIMEOUT_SECONDS} s: {pods}")


def is_ready(pod: Any) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
