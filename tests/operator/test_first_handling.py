"""Many QueueConsumers at once (a start on thousands): at most FIRST_HANDLING_CONCURRENCY of them have their
children made at a time, under the real operator and apiserver, and every one of them still gets its
children and its first tick."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_operator import handlers, state
from tests.operator.operator_harness import create, is_true, namespace_with_queue, qc_where, queue_consumer

RunOperator = Callable[..., AbstractContextManager[KopfRunner]]
CONSUMERS = 12
LIMIT = 3


def test_children_are_made_a_few_at_a_time_and_every_consumer_gets_them(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator: RunOperator, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    real = handlers.ensure_children

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(state, "FIRST_HANDLING_CONCURRENCY", LIMIT)
    monkeypatch.setattr(handlers, "ensure_children", counted)
    namespace, queue = namespace_with_queue(admin, rabbitmq, "first")
    names = [f"c{i}" for i in range(CONSUMERS)]
    for name in names:  # before the operator starts: it finds them all at once, as after a restart
        create(admin, namespace, queue_consumer(name, queue))
    ready = lambda b: is_true(b, "Ready")  # noqa: E731
    with run_operator():
        for name in names:
            wait_until(lambda n=name: qc_where(admin, namespace, n, ready), 120, f"{name} ticked")  # type: ignore[misc]
    apps = client.AppsV1Api(admin)
    assert {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items} == {
        f"{n}-worker" for n in names
    }
    assert 1 < most <= LIMIT, most
