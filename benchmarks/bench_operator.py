"""`make bench-operator`: N QueueConsumers (default 500) on the local apiserver with a 15 s interval.

Measures, for a real `qc-operator run` process: its CPU and RSS at steady state, the operator's API reads
and writes per minute at steady state (writes: target 0), and the time from a backlog appearing in
RabbitMQ to the Deployment's new replica count (target: the polling interval + 2 s). `--consumers N` for
the other sizes (README, "The operator at scale").

Writes are counted from watches on QueueConsumers and Deployments. Every change to a QueueConsumer is the
operator's (nothing else writes them here); a Deployment change is the operator's when its spec or
metadata changed (a new generation, labels or annotations), and kube-controller-manager's when only its
status did — those are counted apart, and the measurement starts once the controller has caught up with
the new Deployments (it works through them at its own API rate limit).

Reads are the apiserver's own count (apiserver_request_total, GET and LIST of resources) over the same
window, leases (leader election) and non-resource paths (health checks, this script's /metrics) left out.
The same window is counted by client too, from the apiserver's audit log of reads (`devstack.audit`: the
user agent names the operator, kube-controller-manager, the apiserver itself and this script), so the
operator's share is measured, not inferred: at steady state the controllers read from their watches, the
apiserver reads the `kubernetes` endpoints every 10 s, and the operator's reads are its Secrets (one GET
per Secret per interval) and the pods of fleets that have any.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aio_pika
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from devstack import audit
from devstack.binaries import REPO_ROOT
from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from devstack.process import cpu_seconds, free_port, stop_process_group
from devstack.services import RabbitMQ
from qc_common import api

CRD = REPO_ROOT / "charts/queue-consumer-operator/files/crd-queueconsumers.yaml"
NAMESPACE = "bench"
INTERVAL_SECONDS = 15
# How long each phase may take before the run gives up (500 QueueConsumers on 2 cores take minutes).
CREATE_TIMEOUT_SECONDS = 900
CREATE_TIMEOUT_SECONDS_PER_CONSUMER = 1.2  # 500 took 282 s on the shared machine at a load of 28
SCALE_TIMEOUT_SECONDS = 10 * INTERVAL_SECONDS
# The operator container's allocator, as the chart sets it (templates/deployment.yaml; README, "The operator
# at scale"): freed memory goes back to glibc, whose periodic trim can return it (`qc_operator.allocator`).
OPERATOR_PYTHONMALLOC = "malloc"
BENCH_USER_AGENT = "qc-bench-operator"  # this script's own calls, as the audit log names them
CREATE_THREADS = 8  # concurrent creations: enough to keep the apiserver busy, not so many it times out


def consumer(name: str, queue: str) -> dict[str, Any]:
    source = {
        "queue": queue,
        "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
        "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"},
    }
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "source": {"rabbitmq": source},
            "worker": {"image": "bench", "task": "bench.tasks:run"},
            "scaling": {"pollingIntervalSeconds": INTERVAL_SECONDS, "messagesPerReplica": 10},
        },
    }


def create_retrying(custom: client.CustomObjectsApi, body: dict[str, Any], attempts: int = 5) -> None:
    """Create a QueueConsumer; an apiserver overloaded by thousands of them may time out (504), and one
    that timed out may have been created all the same (409 on the retry)."""
    for attempt in range(attempts):
        try:
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PLURAL, body)
            return
        except ApiException as error:
            if error.status == 409 and attempt:
                return
            if error.status not in (429, 500, 503, 504) or attempt == attempts - 1:
                raise
            time.sleep(2**attempt)


def create_consumers(api_client: client.ApiClient, names: list[str]) -> None:
    """Create the QueueConsumers from a few threads: one by one, 10,000 take longer than the run itself.
    The "probe" consumes the probe queue, every other one the idle queue."""
    custom = client.CustomObjectsApi(api_client)
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        bodies = [consumer(name, "probe" if name == "probe" else "idle") for name in names]
        for _ in pool.map(functools.partial(create_retrying, custom), bodies):
            pass


def prepare(kube: KubeControlPlane, broker: RabbitMQ) -> client.ApiClient:
    """Start the apiserver and RabbitMQ; the CRD, the namespace, the broker's Secret, the two queues."""
    kube.start()
    broker.start()
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kube.admin_kubeconfig)
    )
    api_client.user_agent = BENCH_USER_AGENT  # its own reads apart from the operator's in the audit log
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    secret = {
        "url": broker.amqp_url,
        "managementUrl": f"http://guest:guest@127.0.0.1:{broker.management_port}",
    }
    data: dict[str, bytes | str] = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
    secret_body = client.V1Secret(metadata=client.V1ObjectMeta(name="rabbitmq"), data=data)
    core.create_namespaced_secret(NAMESPACE, secret_body)
    for queue in ("idle", "probe"):
        broker.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
        counted = functools.partial(queue_counted, broker, queue)
        wait_until(counted, 15, f"the counts of queue {queue!r} in the management API")
    return api_client


def consumer_names(count: int) -> list[str]:
    return [*(f"c{i:05d}" for i in range(count - 1)), "probe"]


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
        # The first list may time out on an apiserver busy with thousands of new objects: retried.
        listed = wait_until(lambda: list_fn(*args), 300, "the list to watch from", retry_on=(ApiException,))
        if not isinstance(listed, dict):
            listed = self.apps.api_client.sanitize_for_serialization(listed)
        seen = {item["metadata"]["name"]: item for item in listed["items"]}
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        # From the list's version: only changes made from now on arrive, no initial ADDED events.
        events = stream.stream(  # type: ignore[no-untyped-call]
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
            stream.stop()  # type: ignore[no-untyped-call]

    def start(self) -> None:
        custom = (self.custom.list_namespaced_custom_object, api.GROUP, api.VERSION, NAMESPACE, api.PLURAL)
        deployments = (self.apps.list_namespaced_deployment, NAMESPACE)
        threads = [
            threading.Thread(target=self._watch, args=args, daemon=True) for args in (custom, deployments)
        ]
        for thread in threads:
            thread.start()


def deployment_count(apps: client.AppsV1Api) -> int:
    """How many Deployments exist, from a list of one (the apiserver counts the rest): polling a whole
    list of thousands every second would load the apiserver the benchmark measures against."""
    listed = apps.list_namespaced_deployment(NAMESPACE, limit=1)
    remaining = listed.metadata.remaining_item_count if listed.metadata else None
    return len(listed.items) + (remaining or 0)


def controller_caught_up(apps: client.AppsV1Api) -> bool:
    """Every Deployment observed by kube-controller-manager at its current generation, with its ReplicaSet."""
    return all(
        d.status is not None
        and d.metadata is not None
        and d.status.observed_generation == d.metadata.generation
        and bool(d.status.conditions)
        for d in apps.list_namespaced_deployment(NAMESPACE).items
    )


def queue_counted(broker: RabbitMQ, queue: str) -> bool:
    """Whether the management API reports the queue's counts yet (it does a moment after its creation)."""
    return "messages_ready" in broker.api("GET", f"/api/queues/%2F/{queue}")


async def publish(url: str, queue: str, count: int) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for i in range(count):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)


def api_reads(api_client: client.ApiClient) -> dict[str, float]:
    """GETs and LISTs of resources the apiserver has served so far, by resource (leases left out)."""
    method, url, headers, body, _ = api_client.param_serialize(
        "GET", "/metrics", auth_settings=["BearerToken"]
    )
    reply: Any = api_client.call_api(method, url, headers, body)
    reply.read()
    reads: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.data.decode()):
        for sample in family.samples:
            resource, verb = sample.labels.get("resource", ""), sample.labels.get("verb")
            counted = resource not in ("", "leases")
            if sample.name == "apiserver_request_total" and verb in ("GET", "LIST") and counted:
                reads[resource] = reads.get(resource, 0.0) + sample.value
    return reads


def reads_per_minute_by_client(
    counts: Mapping[tuple[str, str], int], seconds: float
) -> dict[str, dict[str, float]]:
    """client -> resource -> reads a minute, the operator first, then the busiest."""
    by_client: dict[str, dict[str, float]] = {}
    for (name, resource), count in counts.items():
        by_client.setdefault(name, {})[resource] = count * 60 / seconds
    order = sorted(by_client, key=lambda name: (name != "operator", -sum(by_client[name].values())))
    return {name: by_client[name] for name in order}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--consumers", type=int, default=500)
    parser.add_argument("--steady-seconds", type=float, default=60)
    args = parser.parse_args(argv)
    create_timeout_seconds = max(CREATE_TIMEOUT_SECONDS, CREATE_TIMEOUT_SECONDS_PER_CONSUMER * args.consumers)
    with tempfile.TemporaryDirectory() as directory:
        kube = KubeControlPlane(Path(directory) / "kube", audit_reads=True)
        broker = RabbitMQ(Path(directory) / "rabbitmq")
        operator = None
        try:
            api_client = prepare(kube, broker)
            create_started = time.monotonic()
            create_consumers(api_client, consumer_names(args.consumers))
            env = {
                **os.environ,
                "KUBECONFIG": str(kube.admin_kubeconfig),
                "QC_METRICS_PORT": str(free_port()),  # the operator's own setting
                "PYTHONMALLOC": os.environ.get("PYTHONMALLOC", OPERATOR_PYTHONMALLOC),
            }
            argv = [
                str(Path(sys.executable).with_name("qc-operator")),
                "run",
                "-A",
                "--liveness",
                f"http://127.0.0.1:{free_port()}/healthz",
            ]
            with (Path(directory) / "operator.log").open("wb") as log:  # the child keeps its own descriptor
                operator = subprocess.Popen(
                    argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            apps = client.AppsV1Api(api_client)
            wait_until(
                lambda: deployment_count(apps) >= args.consumers,
                create_timeout_seconds,
                f"the operator to create {args.consumers} worker Deployments",
                interval_seconds=2,
                retry_on=(ApiException,),  # the apiserver may time out while thousands are created
            )
            ready_after = time.monotonic() - create_started
            wait_until(
                lambda: controller_caught_up(apps),
                create_timeout_seconds,
                "kube-controller-manager to catch up with the new Deployments",
                interval_seconds=10,  # a whole list each time: thousands of Deployments
                retry_on=(ApiException,),
            )
            settled_after = time.monotonic() - create_started
            counter = WriteCounter(api_client)
            counter.start()
            # The operator's first round (children, each QueueConsumer's first status) is over once a whole
            # interval and a margin pass without a write from it: on a loaded machine that is long after the
            # Deployments exist, and measuring before it would count the end of the creation as steady.
            quiet_since, last_seen = time.monotonic(), -1
            deadline = time.monotonic() + create_timeout_seconds
            while time.monotonic() - quiet_since < INTERVAL_SECONDS + 5 and time.monotonic() < deadline:
                time.sleep(1)
                if counter.operator_writes != last_seen:
                    quiet_since, last_seen = time.monotonic(), counter.operator_writes
            quiet_after = time.monotonic() - create_started
            counter.reset()
            reads_before = api_reads(api_client)
            load_before = os.getloadavg()[0]
            cpu_before, started, started_unix = cpu_seconds(operator.pid), time.monotonic(), time.time()
            time.sleep(args.steady_seconds)
            elapsed = time.monotonic() - started
            reads = {k: v - reads_before.get(k, 0.0) for k, v in api_reads(api_client).items()}
            cpu = (cpu_seconds(operator.pid) - cpu_before) / elapsed
            load = (load_before + os.getloadavg()[0]) / 2
            ticks = args.consumers * elapsed / INTERVAL_SECONDS
            cpu_ms_per_tick = cpu * elapsed * 1000 / ticks
            steady_count = counter.operator_writes  # before the backlog: what follows is the scale-up's
            writes_per_minute = steady_count * 60 / elapsed
            controller_per_minute = counter.controller_status_writes * 60 / elapsed
            rss, peak = memory_mib(operator.pid, "VmRSS"), memory_mib(operator.pid, "VmHWM")
            # Read after the window's own figures: the operator keeps working while the log is parsed.
            with kube.audit_log.open(encoding="utf-8") as log_lines:
                by_client = audit.reads_by_client(log_lines, started_unix, started_unix + elapsed)

            asyncio.run(publish(broker.amqp_url, "probe", 35))
            appeared = time.monotonic()
            wait_until(
                lambda: apps.read_namespaced_deployment("probe-worker", NAMESPACE).spec.replicas != 0,
                SCALE_TIMEOUT_SECONDS,
                "the probe's Deployment to scale out",
                interval_seconds=0.1,
            )
            reaction = time.monotonic() - appeared
            time.sleep(3)
            scale_writes = counter.operator_writes - steady_count  # proves the watch sees the operator
            counter.stop.set()

            print(f"## Operator with {args.consumers} QueueConsumers, polling interval {INTERVAL_SECONDS} s")
            print(f"all worker Deployments created after   {ready_after:6.1f} s")
            print(f"controller caught up with them after   {settled_after:6.1f} s")
            print(f"operator quiet (no writes) after       {quiet_after:6.1f} s")
            print(f"operator CPU at steady state           {cpu * 100:6.1f} % of one core")
            print(f"operator CPU per QueueConsumer per tick {cpu_ms_per_tick:5.2f} ms")
            print(f"operator RSS (peak)                    {rss:6.1f} MiB ({peak:.1f})")
            print(f"operator API writes per minute, steady {writes_per_minute:6.1f}   (target 0)")
            per_minute = {k: v * 60 / elapsed for k, v in reads.items() if v}
            print(f"API reads per minute, steady           {sum(per_minute.values()):6.1f}   (GET+LIST)")
            print(f"  of which Secrets                     {per_minute.get('secrets', 0.0):6.1f}")
            print("  by resource: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_minute.items())))
            print("API reads per minute by client, steady (the apiserver's audit log):")
            for name, resources in reads_per_minute_by_client(by_client, elapsed).items():
                listed = ", ".join(f"{k} {v:.1f}" for k, v in sorted(resources.items()))
                print(f"  {name:<36} {sum(resources.values()):6.1f}   ({listed})")
            print(
                f"kube-controller-manager status writes  {controller_per_minute:6.1f}   per minute (not ours)"
            )
            print(
                f"backlog appears -> new replica count   {reaction:6.1f} s  "
                f"(target <= {INTERVAL_SECONDS + 2} s)"
            )
            print(f"operator writes for that one scale-up  {scale_writes:6d}   (scale + status)")
            print(f"machine load average (1 min) meanwhile {load:6.1f}   on {os.cpu_count()} CPUs")
        finally:
            if operator is not None:
                stop_process_group(operator.pid)
            broker.stop()
            kube.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
