"""A rotated Secret is used without a restart, and a Secret shared by many QueueConsumers is read once per
polling interval: the real operator (KopfRunner) on the real apiserver, reading the real RabbitMQ's
management API as a user whose password is changed under it, as a rotation does."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from devstack import scrape
from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from devstack.process import free_port
from devstack.services import RabbitMQ
from tests.operator.operator_harness import (
    condition,
    create,
    create_secret,
    get_qc,
    new_namespace,
    queue_consumer,
    set_backlog,
)

CONSUMERS = 5  # sharing one Secret
BACKLOG = 3
WINDOW_SECONDS = 10.0


def management_user(broker: RabbitMQ, user: str, password: str) -> None:
    broker.api("PUT", f"/api/users/{user}", {"password": password, "tags": "monitoring"})
    broker.api("PUT", f"/api/permissions/%2F/{user}", {"configure": "", "write": "", "read": ".*"})


def secret_gets(admin: client.ApiClient) -> float:
    """GETs of Secrets the apiserver has served so far (its own apiserver_request_total)."""
    method, url, headers, body, _ = admin.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    reply = admin.call_api(method, url, headers, body)
    reply.read()
    text = reply.data.decode()
    return scrape.sample_sum(text, "apiserver_request_total", verb="GET", resource="secrets")


def namespaced_operator(
    kube: KubeControlPlane, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> KopfRunner:
    """The operator watching `namespace` only: QueueConsumers other tests left elsewhere are not read, so
    the apiserver's count of Secret reads is this test's."""
    monkeypatch.setenv("KUBECONFIG", str(kube.admin_kubeconfig))
    monkeypatch.setenv("QC_METRICS_PORT", str(free_port()))
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    args = [
        "run",
        "--namespace",
        namespace,
        "--standalone",
        "--liveness",
        liveness,
        "-m",
        "qc_operator.handlers",
    ]
    return KopfRunner(args, timeout=60)


@pytest.mark.slow
def test_a_rotated_password_is_used_without_a_restart_and_a_shared_secret_is_read_once_per_interval(
    rabbitmq: RabbitMQ, kube: KubeControlPlane, admin: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = f"rotating-{uuid.uuid4().hex[:6]}"
    management_user(rabbitmq, user, "first-password")
    namespace, queue = new_namespace(admin, "rotate"), f"rotate-{uuid.uuid4().hex[:6]}"
    asyncio.run(set_backlog(rabbitmq.amqp_url, queue, BACKLOG))

    def url(password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{rabbitmq.management_port}"

    create_secret(
        admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": url("first-password")}
    )
    names = [f"c{i}" for i in range(CONSUMERS)]  # each polls every second

    def source_error(name: str) -> dict[str, Any]:
        return condition(get_qc(admin, namespace, name), "SourceError") or {}

    def all_read() -> bool:
        return all(
            (get_qc(admin, namespace, n).get("status") or {}).get("backlog") == BACKLOG
            and source_error(n).get("status") == "False"
            for n in names
        )

    with namespaced_operator(kube, namespace, monkeypatch):
        for name in names:
            create(admin, namespace, queue_consumer(name, queue))
        wait_until(all_read, 60, "every consumer reading the backlog")

        # Steady state: one GET of the shared Secret per interval (1 s), not one per consumer per tick.
        before, started = secret_gets(admin), time.monotonic()
        time.sleep(WINDOW_SECONDS)
        reads, elapsed = secret_gets(admin) - before, time.monotonic() - started
        assert reads <= elapsed + 2, f"{reads} Secret reads in {elapsed:.1f} s"
        assert reads < CONSUMERS * WINDOW_SECONDS / 2

        # The password rotates: first on the broker (the reads are refused), then in the Secret.
        management_user(rabbitmq, user, "second-password")
        refused = lambda: all("credentials refused" in source_error(n).get("message", "") for n in names)  # noqa: E731
        wait_until(refused, 30, "the old password refused")
        patch = {"data": {"managementUrl": base64.b64encode(url("second-password").encode()).decode()}}
        client.CoreV1Api(admin).patch_namespaced_secret("rabbitmq", namespace, patch)
        wait_until(all_read, 30, "every consumer reading again with the new password, without a restart")
    # After the runner: it holds sys.stdout while the operator runs.
    print(f"Secret GETs at steady state: {reads:g} in {elapsed:.1f} s for {CONSUMERS} consumers")
