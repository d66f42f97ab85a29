"""qc_operator.kept_body, and what kopf keeps of a QueueConsumer under the real operator and apiserver: the
body without metadata.managedFields, its short strings shared; the object in the cluster unchanged."""

from __future__ import annotations

import copy
import gc
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import kopf
import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_operator import kept_body
from tests.operator.operator_harness import create, is_true, namespace_with_queue, qc_where, queue_consumer

RunOperator = Callable[..., AbstractContextManager[KopfRunner]]


def body(name: str) -> dict[str, Any]:
    """A QueueConsumer as the apiserver sends it: parsed from JSON, so no string is shared yet."""
    return dict(
        json.loads(
            json.dumps(
                {
                    "apiVersion": "queueconsumer.io/v1alpha1",
                    "kind": "QueueConsumer",
                    "metadata": {
                        "name": name,
                        "annotations": {"queueconsumer.io/last-handled-configuration": "x" * 500},
                        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:a": {}}}}],
                    },
                    "spec": {"source": {"rabbitmq": {"queue": "q"}}, "worker": {"concurrency": 4}},
                    "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]},
                }
            )
        )
    )


def test_managed_fields_go_and_everything_else_stays_equal_and_in_order() -> None:
    raw = body("a")
    expected = copy.deepcopy(raw)
    del expected["metadata"]["managedFields"]
    kept_body.compact(raw)
    assert raw == expected
    assert json.dumps(raw) == json.dumps(expected)  # the same order too


def test_keys_and_short_strings_are_shared_between_bodies_long_ones_are_not() -> None:
    first, second = body("a"), body("b")
    kept_body.compact(first)
    kept_body.compact(second)
    assert first["status"]["conditions"][0]["reason"] is second["status"]["conditions"][0]["reason"]
    first_key = next(k for k in first["spec"]["worker"])
    second_key = next(k for k in second["spec"]["worker"])
    assert first_key is second_key
    long_key = "queueconsumer.io/last-handled-configuration"
    assert first["metadata"]["annotations"][long_key] is not second["metadata"]["annotations"][long_key]


def test_a_second_body_costs_much_less() -> None:
    def size(value: Any, seen: set[int]) -> int:
        """Bytes of the objects under `value` not already in `seen` (which it extends)."""
        if id(value) in seen:
            return 0
        seen.add(id(value))
        parts = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        nested = sum(size(v, seen) for v in parts) if isinstance(value, dict | list) else 0
        return sys.getsizeof(value) + nested

    as_sent: set[int] = set()
    first_sent, second_sent = body("a"), body("b")  # kept alive: `seen` holds ids
    size(first_sent, as_sent)
    second_as_sent = size(second_sent, as_sent)
    compacted: set[int] = set()
    first, second = body("a"), body("b")
    kept_body.compact(first)
    kept_body.compact(second)
    size(first, compacted)
    assert size(second, compacted) < 0.6 * second_as_sent


@pytest.mark.parametrize(
    "raw",
    [None, "garbage", 7, [], {"metadata": "not a mapping"}, {"kind": "Status", "code": 410}, {"metadata": 0}],
)
def test_anything_that_is_not_an_object_with_metadata_is_left_alone(raw: Any) -> None:
    before = copy.deepcopy(raw)
    kept_body.compact(raw)
    assert raw == before


def test_deep_free_form_fields_do_not_overflow_the_stack() -> None:
    deep: dict[str, Any] = {"leaf": "value"}
    for _ in range(5000):
        deep = {"next": deep}
    raw = {"metadata": {"name": "a", "managedFields": []}, "spec": deep}
    kept_body.compact(raw)
    assert "managedFields" not in raw["metadata"]


def kept_bodies(name: str) -> list[kopf.Body]:
    """kopf's live views of the named QueueConsumer's body in this process (the operator's thread)."""
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, kopf.Body) and o.get("kind") == "QueueConsumer" and o.metadata.get("name") == name
    ]


def test_the_daemon_keeps_the_compact_body(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator: RunOperator
) -> None:
    namespace, queue = namespace_with_queue(admin, rabbitmq, "kept")
    with run_operator():
        create(admin, namespace, queue_consumer("slim", queue))
        ready = lambda b: is_true(b, "Ready")  # noqa: E731
        current = wait_until(lambda: qc_where(admin, namespace, "slim", ready), 60, "the first tick")
        assert current["metadata"].get("managedFields"), "the apiserver tracks field managers"
        kept = kept_bodies("slim")
        assert kept, "kopf keeps the QueueConsumer's body for its daemon"
        for view in kept:
            assert "managedFields" not in view.metadata
            assert view.metadata["uid"] == current["metadata"]["uid"]
            reason = next(c["reason"] for c in view.status["conditions"] if c["type"] == "Ready")
            assert reason is sys.intern("Reconciled")
