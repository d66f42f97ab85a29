"""Helpers for operator tests (and tests/chart): the CRD on the real apiserver, a namespace per test,
QueueConsumer bodies, and probes to wait on with `devstack.polling.wait_until`."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import http.server
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.polling import wait_until
from qc_common import api

CRD_PATH = (
    Path(__file__).resolve().parents[2] / "charts/queue-consumer-operator/files/crd-queueconsumers.yaml"
)


def install_crd(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    crd = yaml.safe_load(CRD_PATH.read_text())
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(crd["metadata"]["name"])
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(crd["metadata"]["name"], crd)

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(api.CRD_NAME).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(established, 30, "the CRD to be established")


# Every namespace new_namespace made, in order: the operator tests' conftest removes a test's own at its end.
CREATED_NAMESPACES: list[str] = []


def new_namespace(api_client: client.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    CREATED_NAMESPACES.append(name)
    return name


def remove_namespace(api_client: client.ApiClient, namespace: str) -> None:
    """Deletes `namespace` without waiting, first dropping the QueueConsumers' finalizers (kopf's, for the
    daemons) so no operator has to run for them to go."""
    custom = client.CustomObjectsApi(api_client)
    consumers = custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)["items"]
    unfinalize = {"metadata": {"finalizers": None}}

    def release(name: str) -> None:
        with contextlib.suppress(ApiException):  # already gone
            custom.patch_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, name, unfinalize
            )

    held = [c["metadata"]["name"] for c in consumers if c["metadata"].get("finalizers")]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(release, held))
    with contextlib.suppress(ApiException):
        client.CoreV1Api(api_client).delete_namespace(namespace)


def create_secret(api_client: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace, {"metadata": {"name": name}, "data": encoded}
    )


def queue_consumer(name: str, queue: str, **scaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "source": {
                "rabbitmq": {
                    "queue": queue,
                    "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
                    "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"},
                }
            },
            "worker": {
                "image": "example.com/orders-worker:1.0",
                "task": "orders.tasks:handle",
                "concurrency": 4,
            },
            "scaling": {"pollingIntervalSeconds": 1, **scaling},
        },
    }


def get_qc(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api_client)
    body: dict[str, Any] = custom.get_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, name
    )
    return body


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return None


def deployment_replicas(api_client: client.ApiClient, namespace: str, name: str) -> int | None:
    try:
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(f"{name}-worker", namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return int(deployment.spec.replicas)


def qc_where(
    api_client: client.ApiClient, namespace: str, name: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    """The QueueConsumer if `predicate` holds for it (with a status), else None."""
    body = get_qc(api_client, namespace, name)
    body.setdefault("status", {})
    return body if predicate(body) else None


def is_true(body: dict[str, Any], kind: str) -> bool:
    found = condition(body, kind)
    return found is not None and found["status"] == "True"


async def set_backlog(url: str, queue: str, messages: int) -> None:
    """Make the queue hold exactly `messages` ready messages (nobody consumes it in these tests)."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        declared = await channel.declare_queue(queue, durable=True)
        await declared.purge()
        for i in range(messages):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue)


def create(admin: client.ApiClient, namespace: str, body: dict[str, object]) -> None:
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )


def namespace_with_queue(
    admin: client.ApiClient, rabbitmq: Any, prefix: str, backlog: int = 0
) -> tuple[str, str]:
    """A new namespace with the `rabbitmq` Secret (url, managementUrl) and a new queue holding `backlog`."""
    namespace = new_namespace(admin, prefix)
    queue = f"{prefix}-{uuid.uuid4().hex[:6]}"
    asyncio.run(set_backlog(rabbitmq.amqp_url, queue, backlog))
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    create_secret(admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": management})
    return namespace, queue


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in HTTP handler that keeps the test output clean."""

    def log_message(self, *args: Any) -> None:
        return None


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A stand-in HTTP server on a free loopback port, in threads, for the block: its host:port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
