"""The end-to-end run behind `make demo` and tests/e2e: the whole product on the local stack.

The chart is installed with helm into the local apiserver; the operator runs as a real `qc-operator`
process with the chart's ServiceAccount (only the chart's RBAC); two QueueConsumers — RabbitMQ, and
Pub/Sub on the emulator — get a burst of messages; the kubelet stand-in runs one `qc-worker` process per
worker pod; Prometheus scrapes the operator and every worker. Optional chaos SIGKILLs workers mid-drain.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.cloud import pubsub_v1
from kubernetes import client, config

from devstack import scrape, traffic
from devstack.binaries import REPO_ROOT
from devstack.kube import KubeControlPlane
from devstack.kubelet import LocalKubelet
from devstack.monitoring_standin import MonitoringStandIn
from devstack.process import free_port, stop_process_group
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ
from devstack.timeline import Sample, Timeline
from qc_common import api, worker_env

NAMESPACE, RELEASE, RELEASE_NAMESPACE = "demo", "qc", "qc-system"
OPERATOR_SERVICE_ACCOUNT = "qc-queue-consumer-operator"
RABBITMQ_CONSUMER, PUBSUB_CONSUMER = "orders", "thumbnails"


@dataclass(frozen=True)
class RunConfig:
    messages_per_consumer: int = 600
    work_seconds: float = 0.25
    concurrency: int = 4
    max_replicas: int = 6
    chaos_kills: int = 3  # SIGKILLs of random workers while the backlog drains
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
        kube: KubeControlPlane,
        rabbitmq: RabbitMQ,
        pubsub: PubSubEmulator,
        prometheus: Prometheus,
        helm: Path,
        workdir: Path,
        run: RunConfig,
    ) -> None:
        self.kube, self.rabbitmq, self.pubsub, self.prometheus = kube, rabbitmq, pubsub, prometheus
        self.helm, self.workdir, self.config = helm, workdir, run
        self.records = workdir / "records"
        self.queue = "orders"
        self.topic = f"projects/{pubsub.project}/topics/thumbnails"
        self.subscription_id = "thumbnails"
        self.published: dict[str, dict[str, float]] = {RABBITMQ_CONSUMER: {}, PUBSUB_CONSUMER: {}}
        self.admin: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kube.admin_kubeconfig)
        )
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_metrics_port = free_port()
        self.kubelet: LocalKubelet | None = None
        self.standin = MonitoringStandIn(free_port(), self._pubsub_backlog)
        self.rng = random.Random(7)

    # --- set-up ---
    def start(self) -> None:
        self.records.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kube.admin_kubeconfig),
            "HELM_CACHE_HOME": str(self.workdir / "helm"),
        }
        subprocess.run(
            [
                str(self.helm),
                "upgrade",
                "--install",
                RELEASE,
                str(REPO_ROOT / "charts/queue-consumer-operator"),
                "-n",
                RELEASE_NAMESPACE,
                "--create-namespace",
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=180,
        )
        core: Any = client.CoreV1Api(self.admin)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        management = (
            f"http://{self.rabbitmq.user}:{self.rabbitmq.password}@127.0.0.1:{self.rabbitmq.management_port}"
        )
        secret = {"url": self.rabbitmq.amqp_url, "managementUrl": management}
        data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "rabbitmq"}, "data": data})
        self.rabbitmq.api("PUT", f"/api/queues/%2F/{self.queue}", {"durable": True})
        os.environ["PUBSUB_EMULATOR_HOST"] = self.pubsub.host
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        publisher.create_topic(name=self.topic)
        publisher.create_topic(name=f"{self.topic}-dead")
        subscription = f"projects/{self.pubsub.project}/subscriptions/{self.subscription_id}"
        subscriber.create_subscription(name=subscription, topic=self.topic, ack_deadline_seconds=10)
        subscriber.close()
        self.standin.start()
        self._start_operator()
        self.kubelet = LocalKubelet(
            self.admin,
            NAMESPACE,
            [str(Path(sys.executable).with_name("qc-worker"))],
            self.workdir / "workers",
            extra_env={traffic.RECORDS_DIR_ENV: str(self.records), "PYTHONPATH": str(REPO_ROOT)},
        )
        self.kubelet.start()
        custom = client.CustomObjectsApi(self.admin)
        for body in (self._rabbitmq_consumer(), self._pubsub_consumer()):
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, body)

    def _start_operator(self) -> None:
        kubeconfig = self.kube.service_account_kubeconfig(RELEASE_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "QC_METRICS_PORT": str(self.operator_metrics_port),
        }
        log = (self.workdir / "operator.log").open("ab")
        self.operator = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("qc-operator")),
                "run",
                "--all-namespaces",
                "--liveness",
                f"http://127.0.0.1:{free_port()}/healthz",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.prometheus.add_target(
            "operator", f"127.0.0.1:{self.operator_metrics_port}", {"job_name": "operator"}
        )

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
        return {
            "image": "local",
            "task": "devstack.demo_tasks:process",
            "concurrency": self.config.concurrency,
            "taskTimeLimitSeconds": 30,
            "drainGraceSeconds": 20,
            "env": extra_env,
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
        source = {
            "project": self.pubsub.project,
            "subscription": self.subscription_id,
            "deadLetterTopic": "thumbnails-dead",
            "monitoringEndpoint": self.standin.endpoint,
            "unauthenticatedMonitoring": True,  # the stand-in is not Google's: no credentials to send
        }
        env = [
            {"name": "PUBSUB_EMULATOR_HOST", "value": self.pubsub.host},
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
        n, work = self.config.messages_per_consumer, self.config.work_seconds
        ids = {name: [f"{name}-{i:05d}" for i in range(n)] for name in self.published}
        now = time.time()
        asyncio.run(
            traffic.publish_rabbitmq(self.rabbitmq.amqp_url, self.queue, ids[RABBITMQ_CONSUMER], work)
        )
        traffic.publish_pubsub(self.topic, ids[PUBSUB_CONSUMER], work)
        for name, batch in ids.items():
            self.published[name].update(dict.fromkeys(batch, now))

    def ledger(self, consumer: str) -> traffic.Ledger:
        return traffic.read_ledger(set(self.published[consumer]), self.records)

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

    def sample(self, seconds: float) -> list[Sample]:
        assert self.kubelet is not None
        apps: Any = client.AppsV1Api(self.admin)
        custom: Any = client.CustomObjectsApi(self.admin)
        samples = []
        for consumer in self.published:
            try:
                deployment: Any = apps.read_namespaced_deployment(f"{consumer}-worker", NAMESPACE)
                replicas, ready = (
                    int(deployment.spec.replicas or 0),
                    int(deployment.status.ready_replicas or 0),
                )
            except client.ApiException:
                replicas = ready = 0
            qc = custom.get_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, consumer)
            status = qc.get("status") or {}
            backlog = (
                self._rabbitmq_backlog() if consumer == RABBITMQ_CONSUMER else self._pubsub_backlog("")[0]
            )
            samples.append(
                Sample(
                    seconds,
                    consumer,
                    backlog,
                    status.get("desiredReplicas"),
                    replicas,
                    ready,
                    self.kubelet.running_for(consumer),
                    self.ledger(consumer).processed,
                )
            )
        for pod, (consumer, port) in self.kubelet.metrics_ports().items():
            self.prometheus.add_target(
                f"worker-{pod}",
                f"127.0.0.1:{port}",
                {"namespace": NAMESPACE, "consumer": consumer, "pod": pod},
            )
        return samples

    def run(self, on_sample: Callable[[list[Sample]], None] | None = None) -> RunResult:
        assert self.kubelet is not None
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
                victim = self.kubelet.kill_random(self.rng)
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
            scaled = timeline.first_time(consumer, lambda s: s.replicas > 0)
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
                scaled,
                drained,
                zero,
            )
        return results

    def worker_metric(self, name: str) -> float:
        """Sum of one metric over the workers running now (read from their own /metrics)."""
        assert self.kubelet is not None
        total = 0.0
        for _, port in self.kubelet.metrics_ports().values():
            with contextlib.suppress(OSError):
                total += scrape.sample_sum(scrape.fetch(f"http://127.0.0.1:{port}/metrics", 2), name)
        return total

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.operator is not None:
            stop_process_group(self.operator.pid)
        self.standin.stop()
        self.admin.close()  # type: ignore[no-untyped-call]
