"""A converted ScaledObject does what KEDA did: the real operator (KopfRunner) on the real apiserver and
RabbitMQ scales the QueueConsumer `qc-operator convert` wrote, from the rabbitmq page's HTTP example shape
(a TriggerAuthentication's `host` = the management URL), and holds one at KEDA's paused-replicas."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_operator.__main__ import build_parser
from qc_operator.convert import cli
from tests.operator.operator_harness import create, deployment_replicas, namespace_with_queue, set_backlog

RunOperator = Callable[..., AbstractContextManager[KopfRunner]]


def keda_objects(namespace: str, queue: str, paused_replicas: str | None) -> list[dict[str, Any]]:
    auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "rabbitmq-conn", "namespace": namespace},
        "spec": {"secretTargetRef": [{"parameter": "host", "name": "rabbitmq", "key": "managementUrl"}]},
    }
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "orders", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"name": "orders"},
            "pollingInterval": 1,
            "maxReplicaCount": 8,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "http",
                        "queueName": queue,
                        "mode": "QueueLength",
                        "value": "10",
                    },
                    "authenticationRef": {"name": "rabbitmq-conn"},
                }
            ],
        },
    }
    if paused_replicas is not None:
        scaled_object["metadata"]["annotations"] = {"autoscaling.keda.sh/paused-replicas": paused_replicas}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {
                "metadata": {"labels": {"app": "orders"}},
                "spec": {"containers": [{"name": "consumer", "image": "example.com/orders:1.0"}]},
            },
        },
    }
    return [auth, scaled_object, deployment]


def converted(documents: list[dict[str, Any]], *flags: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(
        [
            "convert",
            "-",
            "--task",
            "orders.tasks:handle",
            "--rabbitmq-connection-secret",
            "rabbitmq/url",
            *flags,
        ]
    )
    assert cli.run(args, io.StringIO(yaml.safe_dump_all(documents)), out, err) == 0, err.getvalue()
    resource: dict[str, Any] = yaml.safe_load(out.getvalue())
    return resource


def test_a_converted_scaledobject_scales_on_the_backlog_and_keda_paused_replicas_hold(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator: RunOperator
) -> None:
    namespace, queue = namespace_with_queue(admin, rabbitmq, "convert")
    has_counts = lambda: "messages_ready" in rabbitmq.api("GET", f"/api/queues/%2F/{queue}")  # noqa: E731
    wait_until(has_counts, 15, "the new queue's counts in the management API")
    as_keda = converted(keda_objects(namespace, queue, None), "--keep-keda-behaviour")
    assert as_keda["spec"]["scaling"]["preset"] == "hpa"
    paused = converted(keda_objects(namespace, queue, "2"), "--name", "orders-paused")
    with run_operator():
        create(admin, namespace, as_keda)
        create(admin, namespace, paused)
        wait_until(
            lambda: deployment_replicas(admin, namespace, "orders") == 0, 30, "inactive: zero replicas"
        )
        wait_until(lambda: deployment_replicas(admin, namespace, "orders-paused") == 2, 30, "paused at 2")
        # 35 messages at KEDA's value 10 per replica: the HPA's ceil(35 / 10) = 4 (from zero, its scale-up
        # limit is max(1 + 4 pods, 200 %) = 5, so one step).
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 35))
        wait_until(lambda: deployment_replicas(admin, namespace, "orders") == 4, 30, "scale out to 4")
        assert deployment_replicas(admin, namespace, "orders-paused") == 2
