"""The real operator (KopfRunner) on the real apiserver and RabbitMQ: children, scaling, fallback, pause."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import api, worker_env
from tests.operator.operator_harness import (
    condition,
    create,
    create_secret,
    deployment_replicas,
    is_true,
    new_namespace,
    qc_where,
    queue_consumer,
    set_backlog,
)

RunOperator = Callable[..., AbstractContextManager[KopfRunner]]


@pytest.fixture
def setup(admin: client.ApiClient, rabbitmq: RabbitMQ) -> tuple[str, str]:
    namespace = new_namespace(admin, "qc")
    queue = f"orders-{uuid.uuid4().hex[:6]}"
    asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 0))
    # A queue's first message counts reach the management API within ~5 s; until then the operator waits
    # for them (tests/operator/test_new_queue.py), which these tests do not set out to see.
    has_counts = lambda: "messages_ready" in rabbitmq.api("GET", f"/api/queues/%2F/{queue}")  # noqa: E731
    wait_until(has_counts, 15, "the new queue's counts in the management API")
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    create_secret(admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": management})
    return namespace, queue


@pytest.mark.slow
def test_create_scale_out_scale_in_cool_down_to_zero_and_garbage_collect(
    admin: client.ApiClient, rabbitmq: RabbitMQ, setup: tuple[str, str], run_operator: RunOperator
) -> None:
    namespace, queue = setup
    down = {"scaleDown": {"stabilizationWindowSeconds": 2}}
    body = queue_consumer(
        "orders", queue, maxReplicas=6, messagesPerReplica=10, cooldownSeconds=4, behavior=down
    )
    with run_operator() as runner:
        create(admin, namespace, body)
        # create -> the Deployment appears, owned by the QueueConsumer, with the worker's environment.
        wait_until(lambda: deployment_replicas(admin, namespace, "orders") == 0, 30, "the worker Deployment")
        deployment = client.AppsV1Api(admin).read_namespaced_deployment("orders-worker", namespace)
        owner = deployment.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.controller) == ("QueueConsumer", "orders", True)
        container = deployment.spec.template.spec.containers[0]
        env = {e.name: e for e in container.env}
        assert env[worker_env.TASK].value == "orders.tasks:handle"
        assert env[worker_env.RABBITMQ_QUEUE].value == queue
        assert env[worker_env.CONCURRENCY].value == "4"
        assert env[worker_env.RABBITMQ_URL].value_from.secret_key_ref.name == "rabbitmq"  # never copied out
        assert deployment.spec.template.spec.termination_grace_period_seconds >= 300
        assert deployment.spec.template.spec.security_context.run_as_non_root is True

        # backlog -> scale out: 35 messages at 10 per replica is 4 replicas.
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 35))
        wait_until(lambda: deployment_replicas(admin, namespace, "orders") == 4, 30, "scale out to 4")
        shows_backlog = lambda b: b["status"].get("backlog") == 35  # noqa: E731
        qc = wait_until(
            lambda: qc_where(admin, namespace, "orders", shows_backlog), 10, "the backlog in the status"
        )
        assert qc["status"]["desiredReplicas"] == 4
        assert condition(qc, "Active")["status"] == "True"
        assert "scaled up from" in qc["status"]["lastScaleReason"]
        assert "to 4: backlog 35" in qc["status"]["lastScaleReason"]

        # less backlog -> scale in after the stabilization window; drained -> 0 after the cooldown.
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 12))
        wait_until(lambda: deployment_replicas(admin, namespace, "orders") == 2, 30, "scale in to 2")
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 0))
        wait_until(lambda: deployment_replicas(admin, namespace, "orders") == 0, 30, "cool down to 0")
        # The status follows the Deployment's patch in the same tick, a moment later.
        cooled = lambda b: "cooldown" in b["status"].get("lastScaleReason", "")  # noqa: E731
        wait_until(lambda: qc_where(admin, namespace, "orders", cooled), 10, "the cooldown as the reason")

        events = client.CoreV1Api(admin).list_namespaced_event(namespace).items
        scaled = [e.message for e in events if e.reason == "Scaled"]
        assert any("scaled up from 0 to" in m for m in scaled), scaled

        # delete -> the children are garbage-collected by the controller-manager.
        client.CustomObjectsApi(admin).delete_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, "orders"
        )
        wait_until(lambda: deployment_replicas(admin, namespace, "orders") is None, 60, "garbage collection")
    assert runner.exception is None
    assert runner.exit_code == 0


def test_source_failure_uses_fallback_replicas_and_pause_annotations_are_honoured(
    admin: client.ApiClient, rabbitmq: RabbitMQ, setup: tuple[str, str], run_operator: RunOperator
) -> None:
    namespace, queue = setup
    body = queue_consumer(
        "billing", queue, minReplicas=0, maxReplicas=6, messagesPerReplica=10, fallbackReplicas=2
    )
    asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 45))
    with run_operator(verbose=True) as runner:
        create(admin, namespace, body)
        wait_until(lambda: deployment_replicas(admin, namespace, "billing") == 5, 30, "scale out to 5")

        # The source goes down (its credentials now point at a closed port): fallback, never zero. The new
        # credentials carry a password of their own, which must show nowhere the operator writes or logs.
        core = client.CoreV1Api(admin)
        password = f"pw-{uuid.uuid4().hex}"
        dead = {
            "url": f"amqp://guest:{password}@127.0.0.1:1/",
            "managementUrl": f"http://guest:{password}@127.0.0.1:1",
        }
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in dead.items()}
        core.patch_namespaced_secret("rabbitmq", namespace, {"data": encoded})
        wait_until(lambda: deployment_replicas(admin, namespace, "billing") == 2, 30, "fallback replicas")
        has_fallback = lambda b: is_true(b, "Fallback")  # noqa: E731
        qc = wait_until(
            lambda: qc_where(admin, namespace, "billing", has_fallback), 10, "the Fallback condition"
        )
        source_error = condition(qc, "SourceError")
        assert source_error is not None
        assert source_error["status"] == "True"
        assert "127.0.0.1:1" in source_error["message"], "the condition should say which endpoint failed"

        def source_error_warnings() -> list[str]:
            events = core.list_namespaced_event(namespace).items
            return [e.message for e in events if e.reason == "SourceError" and "127.0.0.1:1" in e.message]

        # kopf posts Events from a queue of its own: the Warning may follow the status by a moment.
        wait_until(source_error_warnings, 10, "a Warning Event naming the failed endpoint")
        events = core.list_namespaced_event(namespace).items
        deployment = client.AppsV1Api(admin).read_namespaced_deployment("billing-worker", namespace)
        worker_env_vars = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
        url_ref = worker_env_vars[worker_env.RABBITMQ_URL]
        assert url_ref.value is None, "the broker URL is copied into the Deployment instead of referenced"
        secret_ref = url_ref.value_from.secret_key_ref
        assert (secret_ref.name, secret_ref.key) == ("rabbitmq", "url")
        written = {
            "the QueueConsumer status": json.dumps(qc["status"]),
            "the Events": json.dumps(admin.sanitize_for_serialization(events)),
            "the Deployment": json.dumps(admin.sanitize_for_serialization(deployment)),
        }
        for where, text in written.items():
            assert password not in text, f"the RabbitMQ password shows in {where}"

        # Pause: hold a given count whatever the backlog says.
        custom = client.CustomObjectsApi(admin)
        patch = {"metadata": {"annotations": {api.PAUSED_REPLICAS_ANNOTATION: "1"}}}
        custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "billing", patch)
        wait_until(lambda: deployment_replicas(admin, namespace, "billing") == 1, 30, "paused at 1 replica")
        has_paused = lambda b: is_true(b, "Paused")  # noqa: E731
        wait_until(lambda: qc_where(admin, namespace, "billing", has_paused), 10, "the Paused condition")
    assert runner.exception is None
    # Nor in the operator's log (what `kubectl logs` shows), at --verbose, where kopf logs what it patches.
    assert namespace in runner.output, "the operator's log was not captured"
    assert password not in runner.output, "the RabbitMQ password shows in the operator's log"


def test_bad_input_sets_a_condition_and_scales_nothing(
    admin: client.ApiClient, setup: tuple[str, str], run_operator: RunOperator
) -> None:
    namespace, queue = setup
    # What the schema can catch, the API server rejects with a clear message.
    invalid = queue_consumer("invalid", queue, minReplicas=5, maxReplicas=2)
    with pytest.raises(ApiException) as caught:
        create(admin, namespace, invalid)
    assert "scaling.minReplicas must not exceed scaling.maxReplicas" in str(caught.value.body)

    # What it cannot (a missing Secret), the operator reports as a condition, and keeps running.
    body = queue_consumer("orphan", queue)
    body["spec"]["source"]["rabbitmq"]["connectionSecretRef"] = {"name": "no-such-secret", "key": "url"}
    with run_operator() as runner:
        create(admin, namespace, body)
        has_ready = lambda b: condition(b, "Ready") is not None  # noqa: E731
        qc = wait_until(lambda: qc_where(admin, namespace, "orphan", has_ready), 30, "the Ready condition")
        ready = condition(qc, "Ready")
        assert ready is not None
        assert ready["status"] == "False"
        assert ready["reason"] == "SecretMissing"
        assert "no-such-secret" in ready["message"]
        assert deployment_replicas(admin, namespace, "orphan") is None
    assert runner.exception is None
