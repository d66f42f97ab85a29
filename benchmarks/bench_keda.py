"""`make bench-keda`: our operator side by side with the real KEDA + the HPA, on the same messages.

One fanout exchange copies every message into three queues, each consumed by real worker pods on the
local node (devstack/node.py) at equal per-replica capacity (one Deployment template: the operator's own,
cloned for the KEDA sides): a QueueConsumer with the CRD's defaults; a Deployment scaled by a KEDA
ScaledObject at its documented defaults (rabbitmq trigger on the management API, QueueLength); and one
tuned as a careful user would (pollingInterval 5, cooldownPeriod 30, a 30 s scale-down window). KEDA
v2.21.0 runs from its Go module (devstack/keda.py); kube-controller-manager's HPA controller scales from its
external metric. Runs: a burst, and a checked-in trace compressed in time (the fixed delays are not: KEDA's
poll, the HPA's 15 s sync, pod start-up). Waits come from the messages: each id carries its publish time,
each worker reports its completion to a ledger here, and the task's own sleep is subtracted. Then the
simulator's prediction for the same arrivals and settings (benchmarks/keda_report.py). Results go to
out/bench-keda/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import math
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client, config

from benchmarks import keda_report, keda_traffic
from benchmarks.keda_report import KedaSettings, Sample, SideSettings
from devstack import binaries, e2e, image, keda, netns, traffic
from devstack.keda import Keda
from devstack.kube import KubeControlPlane
from devstack.node import Node
from devstack.services import RabbitMQ
from qc_common import api, worker_env
from qc_operator.simulator import traces
from qc_worker import settings as worker_settings

OUT = binaries.REPO_ROOT / "out" / "bench-keda"
NETNS_NAME = "qc-bench-keda"
NAMESPACE = "bench"
EXCHANGE = "bench-fanout"
OURS = SideSettings("ours", None)
SIDES = (
    OURS,
    SideSettings("keda-default", KedaSettings()),
    SideSettings("keda-tuned", KedaSettings(5, 30, 30)),
)
RABBITMQ_METRIC_LAG_SECONDS = 5  # the management API's statistics refresh (ENVIRONMENT.md)
SAMPLE_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Settings:
    concurrency: int = 4
    work_seconds: float = 0.5  # per message: 8 messages/s per replica
    max_replicas: int = 5
    messages_per_replica: int = 100  # KEDA's `value` (the HPA's AverageValue)
    burst_messages: int = 800
    trace: str = "step-burst-2h"  # `--runs trace`
    spikes_trace: str = "periodic-spikes-2h"  # `--runs spikes`: a 3 s spike every 60 s over a trickle
    trace_speedup: float = 10.0  # seconds of the trace per second of the replay
    trace_peak_rate: float = 20.0  # messages/s at the trace's peak, scaled to the node's 2 cores
    drain_timeout_seconds: float = 600.0  # after the last publish: KEDA's defaults take ~360 s back to zero

    @property
    def throughput_per_replica(self) -> float:
        return self.concurrency / self.work_seconds


class Bench:
    def __init__(self, kube: KubeControlPlane, rabbitmq: RabbitMQ, settings: Settings) -> None:
        self.kube, self.rabbitmq, self.settings = kube, rabbitmq, settings
        self.api_client = config.new_client_from_config(config_file=str(kube.admin_kubeconfig))  # type: ignore[no-untyped-call]
        self.core: Any = client.CoreV1Api(self.api_client)
        self.apps: Any = client.AppsV1Api(self.api_client)
        self.custom: Any = client.CustomObjectsApi(self.api_client)
        self.ledger = keda_traffic.Ledger(side.name for side in SIDES)

    def set_up(self) -> None:
        self.core.create_namespace({"metadata": {"name": NAMESPACE}})
        e2e.create_rabbitmq_secret(self.core, NAMESPACE, self.rabbitmq)
        # KEDA runs on the stack's loopback, where the broker listens (pods reach it at the node address).
        keda_url = (
            f"http://{self.rabbitmq.user}:{self.rabbitmq.password}@127.0.0.1:{self.rabbitmq.management_port}"
        )
        secret = {
            "metadata": {"name": "rabbitmq-keda"},
            "data": {"host": base64.b64encode(keda_url.encode()).decode()},
        }
        self.core.create_namespaced_secret(NAMESPACE, secret)
        self.rabbitmq.api("PUT", f"/api/exchanges/%2F/{EXCHANGE}", {"type": "fanout", "durable": True})
        for side in SIDES:
            self.rabbitmq.api("PUT", f"/api/queues/%2F/{side.name}", {"durable": True})
            self.rabbitmq.api("POST", f"/api/bindings/%2F/e/{EXCHANGE}/q/{side.name}", {"routing_key": ""})
        self.custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, self._consumer()
        )
        authentication = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "rabbitmq-keda"},
            "spec": {"secretTargetRef": [{"parameter": "host", "name": "rabbitmq-keda", "key": "host"}]},
        }
        self.custom.create_namespaced_custom_object(
            "keda.sh", "v1alpha1", NAMESPACE, "triggerauthentications", authentication
        )
        template = self._wait_for(
            lambda: self.apps.read_namespaced_deployment(f"{OURS.name}-worker", NAMESPACE)
        )
        for side in SIDES:
            if side.keda is not None:
                self.apps.create_namespaced_deployment(
                    NAMESPACE, keda_deployment(template, side.name, self.ledger)
                )
                self._create_scaled_object(side.name, side.keda)

    def _consumer(self) -> dict[str, Any]:
        s = self.settings
        return {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": OURS.name},
            "spec": {
                "source": {
                    "rabbitmq": {
                        "queue": OURS.name,
                        "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
                        "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"},
                    }
                },
                "worker": {
                    "image": image.DEMO_WORKER_IMAGE,
                    "imagePullPolicy": "Never",
                    "task": "devstack.demo_tasks:process",
                    "concurrency": s.concurrency,
                    "env": [{"name": traffic.RECORDS_URL_ENV, "value": self.ledger.url(OURS.name)}],
                },
                "scaling": {"maxReplicas": s.max_replicas},  # everything else: the CRD's defaults
            },
        }

    def _create_scaled_object(self, name: str, keda: KedaSettings) -> None:
        spec: dict[str, Any] = {
            "scaleTargetRef": {"name": f"{name}-worker"},
            "minReplicaCount": 0,
            "maxReplicaCount": self.settings.max_replicas,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "http",
                        "queueName": name,
                        "mode": "QueueLength",
                        "value": str(self.settings.messages_per_replica),
                    },
                    "authenticationRef": {"name": "rabbitmq-keda"},
                }
            ],
        }
        if keda != KedaSettings():
            spec["pollingInterval"] = keda.polling_interval_seconds
            spec["cooldownPeriod"] = keda.cooldown_seconds
            window = {"scaleDown": {"stabilizationWindowSeconds": keda.scale_down_window_seconds}}
            spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": window}}
        body = {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object("keda.sh", "v1alpha1", NAMESPACE, "scaledobjects", body)

    def _wait_for(self, read: Callable[[], Any], timeout_seconds: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                return read()
            except client.ApiException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def sample(self) -> dict[str, tuple[int, int]]:
        deployments = self.apps.list_namespaced_deployment(NAMESPACE).items
        by_name = {
            d.metadata.name: (int(d.spec.replicas or 0), int(d.status.ready_replicas or 0))
            for d in deployments
        }
        return {side.name: by_name.get(f"{side.name}-worker", (0, 0)) for side in SIDES}

    def run(self, label: str, arrivals: traces.Arrivals) -> tuple[list[keda_report.Row], dict[str, Any]]:
        """Publish `arrivals` (messages per second), sample until every side is drained and back to zero;
        the rows, and the raw data they come from (publish and completion stamps, samples)."""
        self._wait_until_idle()
        self.ledger.reset()
        published: dict[str, float] = {}
        samples: dict[str, list[Sample]] = {side.name: [] for side in SIDES}
        started = time.time()
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                seconds = time.time() - started
                for name, (replicas, ready) in self.sample().items():
                    samples[name].append(Sample(seconds, replicas, ready))
                stop.wait(SAMPLE_INTERVAL_SECONDS)

        thread = threading.Thread(target=sampler, name="sampler", daemon=True)
        thread.start()
        asyncio.run(
            keda_traffic.publish(
                EXCHANGE, self.rabbitmq.amqp_url, label, arrivals, self.settings.work_seconds, published
            )
        )
        print(f"{label}: published {len(published)} messages in {time.time() - started:.0f} s", flush=True)
        while time.time() - started < len(arrivals) + self.settings.drain_timeout_seconds:
            latest = {name: s[-1] for name, s in samples.items() if s}
            done = all(len(self.ledger.done[side.name]) >= len(published) for side in SIDES)
            if done and all(s.replicas == 0 for s in latest.values()):
                break
            time.sleep(5)
            counts = ", ".join(
                f"{n} {len(self.ledger.done[n])} done/{latest[n].replicas} pods" for n in latest
            )
            print(f"  {time.time() - started:4.0f} s: {counts}", flush=True)
        stop.set()
        thread.join()
        rows = [self._row(side.name, published, samples[side.name], started) for side in SIDES]
        raw = {
            "started": started,
            "published": published,
            "done": {side.name: dict(self.ledger.done[side.name]) for side in SIDES},
            "samples": {name: [s.__dict__ for s in side_samples] for name, side_samples in samples.items()},
        }
        return rows, raw

    def _wait_until_idle(self, timeout_seconds: float = 600.0) -> None:
        """No worker pod left and no consumer on any queue: a pod the previous run scaled away may still
        drain and consume for its grace period (the kubelet of a loaded node is late too), and would take
        the next run's first messages with no replica counted."""

        def idle() -> bool:
            pods = self.core.list_namespaced_pod(NAMESPACE).items
            queues = [self.rabbitmq.api("GET", f"/api/queues/%2F/{side.name}") for side in SIDES]
            return not pods and all(q.get("consumers", 1) == 0 for q in queues)

        deadline = time.monotonic() + timeout_seconds
        while not idle():
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker pods or consumers still there after {timeout_seconds:.0f} s")
            time.sleep(5)

    def _row(
        self, side: str, published: dict[str, float], samples: list[Sample], started: float
    ) -> keda_report.Row:
        done = self.ledger.done[side]
        work = self.settings.work_seconds
        wait = [done[i] - work - published[i] for i in published if i in done]
        first = min(published.values(), default=started)  # times count from the first message
        last = max((done[i] for i in published if i in done), default=math.inf) - first
        samples = [replace(s, seconds=s.seconds - (first - started)) for s in samples]
        missing = len(published) - len(wait)
        if missing:
            print(f"  {side}: {missing} messages not processed before the timeout", flush=True)
        extra = worker_settings.WorkerSettings.rabbitmq_prefetch_extra  # the workers run with the default
        window = self.settings.concurrency + extra
        throughput = keda_report.throughput_per_replica(published, done, samples, window)
        return keda_report.measured_row(side, wait, last, samples, throughput)

    def close(self) -> None:
        self.ledger.server.shutdown()
        self.api_client.close()


def keda_deployment(ours: Any, side: str, ledger: keda_traffic.Ledger) -> dict[str, Any]:
    """The operator's worker Deployment for our side, as a plain one for KEDA: same pods, another queue."""
    body = client.ApiClient().sanitize_for_serialization(ours)  # type: ignore[no-untyped-call]
    labels = {api.CONSUMER_LABEL: side, api.COMPONENT_LABEL: "bench-keda-worker"}
    spec = copy.deepcopy(body["spec"])
    spec["replicas"] = 0
    spec["selector"] = {"matchLabels": labels}
    spec["template"]["metadata"]["labels"] = labels
    container = spec["template"]["spec"]["containers"][0]
    for env in container["env"]:
        if env["name"] == worker_env.RABBITMQ_QUEUE:
            env["value"] = side
        elif env["name"] == traffic.RECORDS_URL_ENV:
            env["value"] = ledger.url(side)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{side}-worker", "labels": labels},
        "spec": spec,
    }


def scenario_rows(
    settings: Settings, arrivals: traces.Arrivals, measured: list[keda_report.Row]
) -> list[keda_report.Row]:
    """The simulator's rows for the same arrivals and sides, fed what the run measured."""
    scenario = keda_report.measured_scenario(
        measured, settings.throughput_per_replica, RABBITMQ_METRIC_LAG_SECONDS, settings.max_replicas
    )
    return [
        keda_report.simulated_row(side, arrivals, scenario, settings.messages_per_replica) for side in SIDES
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-keda", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        default="burst,burst,trace,spikes",
        help="comma-separated: burst, trace, spikes (repeat one to run it again)",
    )
    args = parser.parse_args(argv)
    kinds = args.runs.split(",")
    if unknown := set(kinds) - {"burst", "trace", "spikes"}:
        parser.error(f"--runs: unknown {', '.join(sorted(unknown))} (burst, trace, spikes)")
    settings = Settings()
    workdir = OUT / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    helm = binaries.ensure_built(binaries.HELM)["helm"]
    keda.ensure_built()  # before entering the namespace, which cannot reach the module proxy
    netns.create(NETNS_NAME)
    netns.enter(NETNS_NAME)
    kube = KubeControlPlane(workdir / "kube", with_node=True)
    services: list[Any] = [
        kube,
        Node(workdir / "node", kube),
        RabbitMQ(workdir / "rabbitmq"),
        Keda(workdir / "keda", kube),
    ]
    started: list[Any] = []
    bench = None
    try:
        for service in services:
            started.append(service)  # stopped even if it fails half-way (a node's containerd may run)
            service.start()
        e2e.install_chart(helm, kube.admin_kubeconfig, workdir)
        bench = Bench(kube, services[2], settings)
        e2e.wait_for_operator(bench.core)
        bench.set_up()
        traces_dir = Path(__file__).parent / "traces"
        runs = {
            "burst": np.array([float(settings.burst_messages)]),
            **{
                kind: keda_traffic.compressed_trace(
                    traces_dir / f"{name}.csv", settings.trace_speedup, settings.trace_peak_rate
                )
                for kind, name in (("trace", settings.trace), ("spikes", settings.spikes_trace))
            },
        }
        report = []
        for index, kind in enumerate(kinds, 1):
            arrivals = runs[kind]
            label = f"{kind}-{kinds[:index].count(kind)}"  # burst-1, burst-2, trace-1: ids stay unique
            measured, raw = bench.run(label, arrivals)
            rows = measured + scenario_rows(settings, arrivals, measured)
            title = f"## {label}: {int(arrivals.sum())} messages over {len(arrivals)} s"
            text = f"{title}\n{keda_report.table(rows)}"
            print(text, flush=True)
            report.append(text)
            (OUT / "results.md").write_text("\n\n".join(report) + "\n")
            (OUT / f"{label}.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1))
            (OUT / f"{label}-raw.json").write_text(json.dumps({"arrivals": arrivals.tolist(), **raw}))
    finally:
        if bench is not None:
            bench.close()
        for service in reversed(started):
            service.stop()
        netns.delete(NETNS_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
