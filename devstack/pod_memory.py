"""`make bench-pod-memory`: what a worker pod and the operator pod hold, measured from outside, on the node.

Starts the stack in a namespace of its own with a real node, runs one worker pod of the demo's worker
image with process tasks (`devstack.demo_tasks:hog`) at each concurrency asked, idle and then while every
slot works, and the operator pod from the chart at rest; reads PSS and RSS of every process in each
container from the host (`/proc/PID/smaps_rollup` of the pids in its memory cgroup). PSS splits shared
pages between the processes that share them, so it is what a pod really costs the node.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from devstack import binaries, e2e, image, netns, traffic
from devstack.kube import KubeControlPlane
from devstack.node import CGROUP_MOUNT, Node
from devstack.services import RabbitMQ
from qc_common import api

OUT = binaries.REPO_ROOT / "out" / "pod-memory"
NAMESPACE = "memory"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Footprint:
    processes: int
    pss_mib: float
    rss_mib: float


def footprint(node: Node, pod_uid: str) -> Footprint:
    """PSS and RSS summed over every process of the pod (all its containers, the pause one excluded)."""
    root = CGROUP_MOUNT / "memory" / node.cgroup_root.lstrip("/")
    pids: set[int] = set()
    for pod_dir in root.rglob(f"pod{pod_uid}"):
        for procs in pod_dir.rglob("cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
    pss = rss = 0
    counted = 0
    for pid in pids:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm == "pause":
                continue
            fields = dict(
                line.split()[:2] for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
            )
        except OSError:
            continue
        pss += int(fields["Pss:"]) * 1024
        rss += int(fields["Rss:"]) * 1024
        counted += 1
    return Footprint(counted, pss / MIB, rss / MIB)


def worker_consumer(name: str, queue: str, concurrency: int, ledger_port: int) -> dict[str, Any]:
    records = {"name": traffic.RECORDS_URL_ENV, "value": f"http://{netns.NODE_ADDRESS}:{ledger_port}/"}
    source = {
        "queue": queue,
        "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
        "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"},
    }
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "annotations": {api.PAUSED_REPLICAS_ANNOTATION: "1"}},
        "spec": {
            "source": {"rabbitmq": source},
            "worker": {
                "image": image.DEMO_WORKER_IMAGE,
                "imagePullPolicy": "Never",
                "task": "devstack.demo_tasks:hog",
                "concurrency": concurrency,
                "env": [records],
            },
            "scaling": {"minReplicas": 0, "maxReplicas": 1},
        },
    }


def wait_for(condition: Any, timeout_seconds: float) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise TimeoutError("timed out")


def measure(node: Node, rabbitmq: RabbitMQ, concurrencies: list[int], workdir: Path) -> dict[str, Any]:
    with config.new_client_from_config(config_file=str(node.kube.admin_kubeconfig)) as api_client:  # type: ignore[no-untyped-call]
        core: Any = client.CoreV1Api(api_client)
        custom: Any = client.CustomObjectsApi(api_client)
        e2e.install_chart(binaries.ensure_built(binaries.HELM)["helm"], node.kube.admin_kubeconfig, workdir)
        e2e.wait_for_operator(core)
        operator_pod = core.list_namespaced_pod(e2e.RELEASE_NAMESPACE).items[0]
        time.sleep(10)  # at rest: after its first ticks
        results: dict[str, Any] = {"operator_at_rest": footprint(node, operator_pod.metadata.uid).__dict__}
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        e2e.create_rabbitmq_secret(core, NAMESPACE, rabbitmq)
        ledger = traffic.LedgerServer()
        ledger.start()
        for concurrency in concurrencies:
            name = queue = f"mem-c{concurrency}"
            rabbitmq.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
            body = worker_consumer(name, queue, concurrency, ledger.port)
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, body)
            selector = f"{api.CONSUMER_LABEL}={name}"

            def ready_pods(selector: str = selector) -> list[Any]:
                pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
                return [p for p in pods if e2e.is_ready(p)]

            pod = wait_for(ready_pods, 300)[0]
            time.sleep(5)
            idle = footprint(node, pod.metadata.uid)
            for i in range(concurrency):  # one 20 s task per slot: every process busy at once
                message = {
                    "properties": {},
                    "routing_key": queue,
                    "payload_encoding": "string",
                    "payload": json.dumps({"id": f"{queue}-{i}", "work_seconds": 20}),
                }
                rabbitmq.api("POST", "/api/exchanges/%2F/amq.default/publish", message)
            time.sleep(10)
            busy = footprint(node, pod.metadata.uid)
            results[f"worker_concurrency_{concurrency}"] = {"idle": idle.__dict__, "busy": busy.__dict__}
            custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, name)
        ledger.stop()
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-pod-memory", description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    args = parser.parse_args(argv)
    workdir = OUT / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    netns.create("qc-memory")
    netns.enter("qc-memory")
    kube = KubeControlPlane(workdir / "kube", with_node=True)
    node, rabbitmq = Node(workdir / "node", kube), RabbitMQ(workdir / "rabbitmq")
    services = (kube, node, rabbitmq)
    try:
        for service in services:
            service.start()
        results = measure(node, rabbitmq, args.concurrency, workdir)
    finally:
        for service in reversed(services):
            service.stop()
        netns.delete("qc-memory")
    (OUT / "pod-memory.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
