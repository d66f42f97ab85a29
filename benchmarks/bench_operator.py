"""`make bench-operator`: N QueueConsumers (default 500) on the local apiserver with a 15 s interval.

Measures, for a real `qc-operator run` process: its CPU and RSS at steady state, the operator's API writes
per minute at steady state (target 0), and the time from a backlog appearing in RabbitMQ to the
Deployment's new replica count (target: the polling interval + 2 s).

Writes are counted from watches on QueueConsumers and Deployments. Every change to a QueueConsumer is the
operator's (nothing else writes them here); a Deployment change is the operator's when its spec or
metadata changed (a new generation, labels or annotations), and kube-controller-manager's when only its
status did — those are counted apart, and the measurement starts once the controller has caught up with
the new Deployments (it works through them at its own API rate limit).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aio_pika
import yaml
from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devstack.kube import KubeControlPlane
from devstack.process import free_port, stop_process_group
from devstack.services import RabbitMQ
from qc_common import api

CRD = Path(__file__).resolve().parents[1] / "charts/queue-consumer-operator/files/crd-queueconsumers.yaml"
NAMESPACE = "bench"
INTERVAL_SECONDS = 15


def consumer(name: str, queue: str) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name},
        "spec": {
            "source": {"rabbitmq": {"queue": queue, "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
                                    "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"}}},
            "worker": {"image": "bench", "task": "bench.tasks:run"},
            "scaling": {"pollingIntervalSeconds": INTERVAL_SECONDS, "messagesPerReplica": 10},
        },
    }  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int, key: str) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1]) / 1024


class WriteCounter:
    """Counts changes to QueueConsumers and Deployments in the namespace, by who made them (see above)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.operator_writes = 0
        self.controller_status_writes = 0
        self.custom, self.apps = client.CustomObjectsApi(api_client), client.AppsV1Api(api_client)
        self.stop = threading.Event()

    def reset(self) -> None:
        self.operator_writes = self.controller_status_writes = 0

    @staticmethod
    def _written_by_operator(before: dict[str, Any] | None, after: dict[str, Any], deployment: bool) -> bool:
        if before is None or not deployment:
            return True
        keys = ("generation", "labels", "annotations")
        return any(before["metadata"].get(k) != after["metadata"].get(k) for k in keys)

    def _watch(self, list_fn: Any, *args: Any) -> None:
        deployments = list_fn == self.apps.list_namespaced_deployment
        listed = list_fn(*args)
        if not isinstance(listed, dict):
            listed = self.apps.api_client.sanitize_for_serialization(listed)
        seen = {item["metadata"]["name"]: item for item in listed["items"]}
        stream = watch.Watch()
        # From the list's version: only changes made from now on arrive, no initial ADDED events.
        events = stream.stream(
            list_fn, *args, resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=600
        )
        try:
            for event in events:
                if self.stop.is_set():
                    break
                raw = event["raw_object"]
                if self._written_by_operator(seen.get(raw["metadata"]["name"]), raw, deployments):
                    self.operator_writes += 1
                else:
                    self.controller_status_writes += 1
                seen[raw["metadata"]["name"]] = raw
        except Exception:  # the apiserver stops at the end of the run, which ends the stream
            if not self.stop.is_set():
                raise
        finally:
            stream.stop()

    def start(self) -> None:
        threads = [
            threading.Thread(target=self._watch, args=(self.custom.list_namespaced_custom_object, api.GROUP,
                             api.VERSION, NAMESPACE, api.PLURAL), daemon=True),
            threading.Thread(
                target=self._watch, args=(self.apps.list_namespaced_deployment, NAMESPACE), daemon=True
            ),
        ]  # fmt: skip
        for thread in threads:
            thread.start()


def controller_caught_up(apps: client.AppsV1Api) -> bool:
    """Every Deployment observed by kube-controller-manager at its current generation, with its ReplicaSet."""
    return all(
        d.status.observed_generation == d.metadata.generation and d.status.conditions
        for d in apps.list_namespaced_deployment(NAMESPACE).items
    )


async def publish(url: str, queue: str, count: int) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for i in range(count):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--consumers", type=int, default=500)
    parser.add_argument("--steady-seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        kube, broker = KubeControlPlane(Path(directory) / "kube"), RabbitMQ(Path(directory) / "rabbitmq")
        kube.start()
        broker.start()
        operator = None
        try:
            api_client = config.new_client_from_config(config_file=str(kube.admin_kubeconfig))
            client.ApiextensionsV1Api(api_client).create_custom_resource_definition(
                yaml.safe_load(CRD.read_text())
            )
            core = client.CoreV1Api(api_client)
            core.create_namespace({"metadata": {"name": NAMESPACE}})
            secret = {
                "url": broker.amqp_url,
                "managementUrl": f"http://guest:guest@127.0.0.1:{broker.management_port}",
            }
            data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
            core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "rabbitmq"}, "data": data})
            for queue in ("idle", "probe"):
                broker.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
            time.sleep(2)  # let the management API publish the new queues' counts
            custom = client.CustomObjectsApi(api_client)
            create_started = time.monotonic()
            for i in range(args.consumers - 1):
                custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL,
                                                       consumer(f"c{i:04d}", "idle"))  # fmt: skip
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL,
                                                   consumer("probe", "probe"))  # fmt: skip
            env = {
                **os.environ,
                "KUBECONFIG": str(kube.admin_kubeconfig),
                "QC_METRICS_PORT": str(free_port()),
            }
            log = open(Path(directory) / "operator.log", "wb")  # noqa: SIM115
            operator = subprocess.Popen(
                [str(Path(sys.executable).with_name("qc-operator")), "run", "-A",
                 "--liveness", f"http://127.0.0.1:{free_port()}/healthz"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            apps = client.AppsV1Api(api_client)
            while len(apps.list_namespaced_deployment(NAMESPACE).items) < args.consumers:
                time.sleep(1)
            ready_after = time.monotonic() - create_started
            while not controller_caught_up(apps):
                time.sleep(2)
            settled_after = time.monotonic() - create_started
            time.sleep(2 * INTERVAL_SECONDS)  # every daemon has ticked (and written its first status) by now

            counter = WriteCounter(api_client)
            counter.start()
            time.sleep(1)
            counter.reset()
            cpu_before, started = cpu_seconds(operator.pid), time.monotonic()
            time.sleep(args.steady_seconds)
            elapsed = time.monotonic() - started
            cpu = (cpu_seconds(operator.pid) - cpu_before) / elapsed
            steady_count = counter.operator_writes  # before the backlog: what follows is the scale-up's
            writes_per_minute = steady_count * 60 / elapsed
            controller_per_minute = counter.controller_status_writes * 60 / elapsed
            rss, peak = memory_mib(operator.pid, "VmRSS"), memory_mib(operator.pid, "VmHWM")

            asyncio.run(publish(broker.amqp_url, "probe", 35))
            appeared = time.monotonic()
            while apps.read_namespaced_deployment("probe-worker", NAMESPACE).spec.replicas == 0:
                time.sleep(0.1)
            reaction = time.monotonic() - appeared
            time.sleep(3)
            scale_writes = counter.operator_writes - steady_count  # proves the watch sees the operator
            counter.stop.set()

            print(f"## Operator with {args.consumers} QueueConsumers, polling interval {INTERVAL_SECONDS} s")
            print(f"all worker Deployments created after   {ready_after:6.1f} s")
            print(f"controller caught up with them after   {settled_after:6.1f} s")
            print(f"operator CPU at steady state           {cpu * 100:6.1f} % of one core")
            print(f"operator RSS (peak)                    {rss:6.1f} MiB ({peak:.1f})")
            print(f"operator API writes per minute, steady {writes_per_minute:6.1f}   (target 0)")
            print(
                f"kube-controller-manager status writes  {controller_per_minute:6.1f}   per minute (not ours)"
            )
            print(
                f"backlog appears -> new replica count   {reaction:6.1f} s  "
                f"(target <= {INTERVAL_SECONDS + 2} s)"
            )
            print(f"operator writes for that one scale-up  {scale_writes:6d}   (scale + status)")
        finally:
            if operator is not None:
                stop_process_group(operator.pid)
            broker.stop()
            kube.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
