"""`convert.params`: a KEDA trigger parameter followed to a literal or a Secret key, as KEDA resolves it."""

from __future__ import annotations

from typing import Any

import pytest

from qc_operator.convert.model import SecretRef
from qc_operator.convert.params import TriggerParams

CONTAINER = {
    "name": "consumer",
    "env": [
        {"name": "RABBITMQ_HOST", "valueFrom": {"secretKeyRef": {"name": "rabbit", "key": "url"}}},
        {"name": "QUEUE", "value": "orders"},
        {"name": "FROM_CONFIG", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
    ],
}


def params(metadata: dict[str, Any], auth: dict[str, Any] | None = None) -> TriggerParams:
    return TriggerParams(
        metadata, auth or {}, "TriggerAuthentication default/auth" if auth else "", CONTAINER
    )


@pytest.mark.parametrize(
    ("name", "metadata", "auth", "literal", "secret"),
    [
        ("written in the metadata", {"host": "amqp://h"}, None, "amqp://h", None),
        ("FromEnv to a plain variable", {"queueNameFromEnv": "QUEUE"}, None, None, None),
        ("FromEnv to a Secret key", {"hostFromEnv": "RABBITMQ_HOST"}, None, None, SecretRef("rabbit", "url")),
        (
            "the auth's secretTargetRef",
            {},
            {"secretTargetRef": [{"parameter": "host", "name": "s", "key": "k"}]},
            None,
            SecretRef("s", "k"),
        ),
        (
            "the auth's env to a Secret key",
            {},
            {"env": [{"parameter": "host", "name": "RABBITMQ_HOST"}]},
            None,
            SecretRef("rabbit", "url"),
        ),
        (
            "the auth wins over FromEnv",
            {"hostFromEnv": "RABBITMQ_HOST"},
            {"secretTargetRef": [{"parameter": "host", "name": "s", "key": "k"}]},
            None,
            SecretRef("s", "k"),
        ),
        ("a variable from a ConfigMap", {"hostFromEnv": "FROM_CONFIG"}, None, None, None),
    ],
)
def test_a_parameter_resolves_to_a_literal_or_a_secret_key(
    name: str,
    metadata: dict[str, Any],
    auth: dict[str, Any] | None,
    literal: str | None,
    secret: SecretRef | None,
) -> None:
    resolved = params(metadata, auth)
    parameter = "queueName" if "queueNameFromEnv" in metadata else "host"
    assert resolved.secret(parameter) == secret, name
    assert resolved.literal(parameter) == (literal if parameter == "host" else "orders"), name
    assert resolved.given(parameter), name


def test_where_says_why_a_parameter_cannot_be_followed() -> None:
    assert "written in the trigger's metadata" in params({"host": "amqp://h"}).where("host")
    assert "RABBITMQ_MISSING, which the Deployment lacks" in params(
        {"hostFromEnv": "RABBITMQ_MISSING"}
    ).where("host")
    vault = {"hashiCorpVault": [{"parameter": "host"}]}
    assert (
        params({}, vault).where("host")
        == "host comes from TriggerAuthentication default/auth's hashiCorpVault"
    )
    assert params({}, vault).given("host")
    assert params({}, vault).secret("host") is None
    assert not params({}).given("host")


def test_pod_identity_and_the_auth_parameters_left_unused() -> None:
    auth = {
        "podIdentity": {"provider": "gcp"},
        "secretTargetRef": [
            {"parameter": "host", "name": "s", "key": "k"},
            {"parameter": "unsafeSsl", "name": "s", "key": "u"},
        ],
    }
    resolved = params({}, auth)
    assert resolved.pod_identity == "gcp"
    assert params({}, {"podIdentity": {"provider": "none"}}).pod_identity is None
    assert resolved.unused_auth_notes({"host"}) == [
        "TriggerAuthentication default/auth gives 'unsafeSsl', which has no equivalent here: not carried over"
    ]
