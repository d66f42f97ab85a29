"""`convert.rabbitmq`: KEDA's rabbitmq trigger -> spec.source.rabbitmq, or the reason it cannot be."""

from __future__ import annotations

from typing import Any

import pytest

from qc_operator.convert import rabbitmq
from qc_operator.convert.model import NotConvertible, Options, SecretRef
from qc_operator.convert.params import TriggerParams

HOST_AUTH = {"secretTargetRef": [{"parameter": "host", "name": "rabbit", "key": "host"}]}
MANAGEMENT = SecretRef("rabbit", "management")
CONNECTION = SecretRef("rabbit", "amqp")


def convert(
    metadata: dict[str, Any],
    auth: dict[str, Any] | None = None,
    options: Options | None = None,
    trigger: dict[str, Any] | None = None,
    container: dict[str, Any] | None = None,
) -> Any:
    params = TriggerParams(
        metadata, auth or {}, "TriggerAuthentication default/auth" if auth else "", container or {}
    )
    return rabbitmq.convert(trigger or {"type": "rabbitmq"}, params, options or Options())


@pytest.mark.parametrize(
    ("name", "metadata", "target", "activation"),
    [
        (
            "mode and value",
            {"mode": "QueueLength", "value": "100.50", "activationValue": "10.5"},
            100.5,
            10.5,
        ),
        ("the deprecated queueLength", {"queueLength": "7"}, 7.0, 0.0),
        ("KEDA's default target", {}, 20.0, 0.0),
    ],
)
def test_queue_length_is_messages_per_replica(
    name: str, metadata: dict[str, Any], target: float, activation: float
) -> None:
    plan = convert(
        {"queueName": "orders", "protocol": "amqp", **metadata},
        HOST_AUTH,
        Options(rabbitmq_management=MANAGEMENT),
    )
    assert (plan.messages_per_replica, plan.activation_backlog) == (target, activation), name
    assert plan.source == {
        "rabbitmq": {
            "queue": "orders",
            "connectionSecretRef": {"name": "rabbit", "key": "host"},
            "managementSecretRef": {"name": "rabbit", "key": "management"},
        }
    }
    assert any("counted ready messages only" in note for note in plan.notes)


def test_an_http_host_is_the_management_url_and_the_workers_url_comes_from_the_command_line() -> None:
    metadata = {
        "queueName": "orders",
        "protocol": "http",
        "vhostName": "shop",
        "mode": "QueueLength",
        "value": "5",
    }
    plan = convert(metadata, HOST_AUTH, Options(rabbitmq_connection=CONNECTION))
    source = plan.source["rabbitmq"]
    assert source["managementSecretRef"] == {"name": "rabbit", "key": "host"}
    assert source["connectionSecretRef"] == {"name": "rabbit", "key": "amqp"}
    assert source["vhost"] == "shop"
    with pytest.raises(NotConvertible, match="pass --rabbitmq-connection-secret NAME/KEY"):
        convert(metadata, HOST_AUTH)


def test_host_from_env_follows_the_deployments_secret_key() -> None:
    container = {
        "env": [{"name": "RABBIT", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "url"}}}]
    }
    plan = convert(
        {"queueName": "q", "hostFromEnv": "RABBIT"},
        options=Options(rabbitmq_management=MANAGEMENT),
        container=container,
    )
    assert plan.source["rabbitmq"]["connectionSecretRef"] == {"name": "env-secret", "key": "url"}
    assert any("protocol auto" in note for note in plan.notes)


@pytest.mark.parametrize(
    ("name", "metadata", "auth", "trigger", "reason"),
    [
        (
            "a rate",
            {"mode": "MessageRate", "value": "100"},
            HOST_AUTH,
            None,
            "mode MessageRate scales on a rate",
        ),
        ("a Value metric", {"value": "1"}, HOST_AUTH, {"metricType": "Value"}, "metricType Value"),
        ("a regex", {"useRegex": "true", "protocol": "http"}, HOST_AUTH, None, "useRegex selects queues"),
        (
            "Azure Workload Identity",
            {"protocol": "http"},
            {**HOST_AUTH, "podIdentity": {"provider": "azure-workload"}},
            None,
            "podIdentity azure-workload",
        ),
        (
            "a host written out",
            {"host": "amqp://guest:guest@h:5672/"},
            None,
            None,
            "written in the trigger's metadata",
        ),
        ("no management URL", {}, HOST_AUTH, None, "pass --rabbitmq-management-secret"),
    ],
)
def test_what_cannot_be_converted_says_why(
    name: str,
    metadata: dict[str, Any],
    auth: dict[str, Any] | None,
    trigger: dict[str, Any] | None,
    reason: str,
) -> None:
    with pytest.raises(NotConvertible, match=reason):
        convert({"queueName": "orders", **metadata}, auth, trigger=trigger)


def test_a_host_written_out_converts_with_both_secrets_named() -> None:
    plan = convert(
        {"queueName": "orders", "host": "amqp://h/"},
        options=Options(rabbitmq_connection=CONNECTION, rabbitmq_management=MANAGEMENT),
    )
    assert plan.source["rabbitmq"]["connectionSecretRef"] == {"name": "rabbit", "key": "amqp"}


def test_credentials_and_tls_apart_from_the_url_get_notes() -> None:
    auth = {
        "secretTargetRef": [
            {"parameter": p, "name": "rabbit", "key": p}
            for p in ("host", "username", "password", "tls", "ca", "vhostName", "unsafeSsl")
        ]
    }
    plan = convert({"queueName": "orders", "timeout": "1000"}, auth, Options(rabbitmq_management=MANAGEMENT))
    notes = "\n".join(plan.notes)
    assert "put them in the URLs" in notes
    assert "TLS client settings" in notes
    assert "read vhostName from the Secret key rabbit/vhostName" in notes
    assert "rabbitmq trigger timeout='1000': not carried over" in notes
    assert "gives 'unsafeSsl', which has no equivalent" in notes
