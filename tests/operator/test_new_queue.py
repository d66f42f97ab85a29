"""A brand-new RabbitMQ queue under the real operator, apiserver and broker: the management API lists it
without message counts for its first seconds, and that is not a failing source (plan.counts_pending)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from kopf.testing import KopfRunner
from kubernetes import client

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import api
from tests.operator.operator_harness import (
    condition,
    create,
    create_secret,
    deployment_replicas,
    get_qc,
    is_true,
    new_namespace,
    qc_where,
    queue_consumer,
    set_backlog,
)

RunOperator = Callable[..., AbstractContextManager[KopfRunner]]
WAITING = "waiting for the new queue's first message counts"


def active_message(body: dict[str, Any]) -> str:
    return str((condition(body, "Active") or {}).get("message", ""))


def test_a_new_queue_scales_from_zero_only_when_messages_arrive_and_a_failing_source_still_falls_back(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator: RunOperator
) -> None:
    namespace = new_namespace(admin, "newq")
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    create_secret(admin, namespace, "rabbitmq", {"url": rabbitmq.amqp_url, "managementUrl": management})
    custom = client.CustomObjectsApi(admin)
    with run_operator() as runner:
        # A source that really fails (the queue does not exist) wakes a fleet at zero: the fallback.
        create(admin, namespace, queue_consumer("missing", f"missing-{uuid.uuid4().hex[:6]}"))
        wait_until(lambda: deployment_replicas(admin, namespace, "missing") == 1, 30, "the fallback replica")
        has_fallback = lambda b: is_true(b, "Fallback")  # noqa: E731
        failed = wait_until(lambda: qc_where(admin, namespace, "missing", has_fallback), 10, "the condition")
        assert "not found" in str((condition(failed, "SourceError") or {}).get("message"))

        # A consumer ticking every second on a counted, empty queue; then its spec moves to a queue just
        # made, which the management API lists without counts for its first seconds. Under load a tick may
        # miss that window: a few new queues are tried, and the fleet must stay at zero through all.
        old = f"old-{uuid.uuid4().hex[:6]}"
        asyncio.run(set_backlog(rabbitmq.amqp_url, old, 0))
        create(admin, namespace, queue_consumer("fresh", old))
        idle = lambda b: "backlog 0" in active_message(b)  # noqa: E731
        wait_until(lambda: qc_where(admin, namespace, "fresh", idle), 30, "the consumer ticking")
        seen: list[tuple[str, int, int]] = []
        for attempt in range(3):
            queue = f"fresh{attempt}-{uuid.uuid4().hex[:6]}"
            rabbitmq.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
            moved = {"spec": {"source": {"rabbitmq": {"queue": queue}}}}
            custom.patch_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, "fresh", moved
            )
            deadline = time.monotonic() + 30
            while "messages_ready" not in rabbitmq.api("GET", f"/api/queues/%2F/{queue}"):
                assert time.monotonic() < deadline, "the management API never counted the new queue"
                body = get_qc(admin, namespace, "fresh")
                desired = int(body["status"].get("desiredReplicas", -1))
                seen.append(
                    (active_message(body), desired, deployment_replicas(admin, namespace, "fresh") or 0)
                )
                time.sleep(0.2)
            if any(WAITING in message for message, _, _ in seen):
                break
        assert any(WAITING in message for message, _, _ in seen), (
            f"no tick saw a queue uncounted: {set(seen)}"
        )
        assert {desired for _, desired, _ in seen} == {0}, "a queue not counted yet would wake the fleet"
        assert {replicas for _, _, replicas in seen} == {0}
        events = client.CoreV1Api(admin).list_namespaced_event(namespace).items
        assert not [e.message for e in events if "no message counts" in e.message], "not a failing source"

        # Counted and empty: still asleep over several ticks; messages arrive: 0 -> 1.
        counted = lambda b: "backlog 0" in active_message(b)  # noqa: E731
        wait_until(lambda: qc_where(admin, namespace, "fresh", counted), 15, "the empty queue counted")
        time.sleep(3)
        assert deployment_replicas(admin, namespace, "fresh") == 0
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 5))
        wait_until(lambda: (deployment_replicas(admin, namespace, "fresh") or 0) >= 1, 30, "the wake-up")
    assert runner.exception is None
