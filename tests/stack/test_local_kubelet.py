"""The kubelet stand-in runs one process per worker pod, restarts crashes and drains on pod deletion."""

from __future__ import annotations

import base64
import random
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from devstack.kube import KubeControlPlane
from devstack.kubelet import LocalKubelet
from devstack.polling import wait_until
from qc_common import api, worker_env

# Stands in for qc-worker: records its environment, and on SIGTERM records that it drained, then exits 0.
FAKE_WORKER = f"""
import os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1]) / os.environ[{worker_env.METRICS_PORT!r}]
out.write_text(os.environ[{worker_env.RABBITMQ_URL!r}] + "\\n")
def drain(signum, frame):
    with out.open("a") as f:
        f.write("drained\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, drain)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def namespace(kube: KubeControlPlane) -> Iterator[tuple[client.ApiClient, str]]:
    name = f"kubelet-{uuid.uuid4().hex[:6]}"
    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as api_client:
        client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
        yield api_client, name


def test_local_kubelet_runs_restarts_and_drains_worker_pods(
    namespace: tuple[client.ApiClient, str], tmp_path: Path
) -> None:
    api_client, ns = namespace
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    url = "amqp://user:secret@127.0.0.1:5672/"
    core.create_namespaced_secret(
        ns, {"metadata": {"name": "broker"}, "data": {"url": base64.b64encode(url.encode()).decode()}}
    )
    labels = {api.CONSUMER_LABEL: "demo"}
    env = [{"name": worker_env.RABBITMQ_URL, "valueFrom": {"secretKeyRef": {"name": "broker", "key": "url"}}}]
    pod_spec = {
        "terminationGracePeriodSeconds": 10,
        "containers": [{"name": "worker", "image": "x", "env": env}],
    }
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "demo"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
    )
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    records = tmp_path / "records"
    records.mkdir()
    kubelet = LocalKubelet(api_client, ns, [sys.executable, str(script), str(records)], tmp_path / "logs")
    kubelet.start()
    try:

        def ready_pods() -> int:
            pods = core.list_namespaced_pod(ns, label_selector=api.CONSUMER_LABEL).items
            return sum(
                1
                for p in pods
                if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            )

        wait_until(lambda: ready_pods() == 2 and len(list(records.iterdir())) == 2, 60, "2 ready worker pods")
        assert all(f.read_text() == url + "\n" for f in records.iterdir()), (
            "the Secret reference was not resolved"
        )

        killed = kubelet.kill_random(random.Random(1))
        assert killed is not None

        def restarted() -> bool:
            pod = core.read_namespaced_pod(killed, ns)
            return bool(pod.status.container_statuses and pod.status.container_statuses[0].restart_count == 1)

        wait_until(restarted, 30, "the killed worker to be restarted")

        apps.patch_namespaced_deployment_scale("demo", ns, {"spec": {"replicas": 1}})
        wait_until(lambda: kubelet.running() == 1 and ready_pods() == 1, 60, "scale-down to 1 pod")
        drained = [f for f in records.iterdir() if f.read_text().endswith("drained\n")]
        assert len(drained) == 1, "the pod scaled away was not sent SIGTERM and allowed to drain"
    finally:
        kubelet.stop()
