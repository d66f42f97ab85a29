"""`devstack.audit`: reads counted by client from the apiserver's audit log lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from devstack import audit

START = datetime(2026, 12, 3, 7, 0, 0, tzinfo=UTC).timestamp()


def event(seconds: float, agent: str, verb: str = "get", resource: str = "secrets", **extra: object) -> str:
    received = datetime.fromtimestamp(START + seconds, UTC).isoformat().replace("+00:00", "Z")
    body = {
        "stage": "ResponseComplete",
        "verb": verb,
        "userAgent": agent,
        "objectRef": {"resource": resource, "namespace": "bench"},
        "requestReceivedTimestamp": received,
        **extra,
    }
    return json.dumps(body)


def test_each_client_is_named_by_its_user_agent() -> None:
    assert audit.client_of("qc-operator/0.1.0") == "operator"
    assert audit.client_of("kopf/1.37.2") == "operator"
    assert audit.client_of("kube-controller-manager/v1.34.1 (linux/amd64) kubernetes/abc") == (
        "kube-controller-manager"
    )
    assert audit.client_of("qc-bench-operator") == "qc-bench-operator"
    assert audit.client_of("") == "unnamed"


def test_reads_in_the_window_are_counted_by_client_and_resource() -> None:
    lines = [
        event(1, "qc-operator/0.1.0"),
        event(2, "kopf/1.37.2", verb="list", resource="pods"),
        event(3, "kube-controller-manager/v1.34.1", verb="list", resource="pods"),
        event(4, "kube-controller-manager/v1.34.1", verb="list", resource="pods"),
        event(-1, "qc-operator/0.1.0"),  # before the window
        event(60, "qc-operator/0.1.0"),  # at its end: not in it
        event(5, "qc-operator/0.1.0", resource="leases"),  # leader election
        event(6, "qc-operator/0.1.0", resource=""),  # a non-resource path
        event(7, "qc-operator/0.1.0", verb="watch", resource="pods"),
        event(8, "qc-operator/0.1.0", stage="ResponseStarted"),
        "not json",
        json.dumps({"stage": "ResponseComplete", "verb": "get"}),  # no timestamp
        event(9, "qc-operator/0.1.0")[:40],  # cut short
        "5",  # JSON, but no event
        "[1]",
        event(10, "qc-operator/0.1.0", objectRef=[1]),
        event(11, 7),  # a user agent that is not a string
        event(12, "qc-operator/0.1.0", requestReceivedTimestamp=5),
        event(13, "qc-operator/0.1.0", verb=None),
    ]
    counts = audit.reads_by_client(lines, START, START + 60)
    assert counts == {
        ("operator", "secrets"): 1,
        ("operator", "pods"): 1,
        ("kube-controller-manager", "pods"): 2,
    }
