"""`convert.pubsub`: KEDA's gcp-pubsub trigger -> spec.source.pubsub, or the reason it cannot be."""

from __future__ import annotations

from typing import Any

import pytest

from qc_operator.convert import pubsub
from qc_operator.convert.model import NotConvertible, Options
from qc_operator.convert.params import TriggerParams

KEY_CONTAINER = {
    "env": [
        {"name": "GOOGLE_JSON", "valueFrom": {"secretKeyRef": {"name": "pubsub-secret", "key": "key.json"}}}
    ]
}


def convert(
    metadata: dict[str, Any],
    auth: dict[str, Any] | None = None,
    options: Options | None = None,
    container: dict[str, Any] | None = None,
) -> Any:
    params = TriggerParams(
        metadata, auth or {}, "TriggerAuthentication ns/auth" if auth else "", container or {}
    )
    return pubsub.convert({"type": "gcp-pubsub"}, params, options or Options())


def test_a_full_subscription_name_carries_its_project_and_credentials_from_env_become_the_key() -> None:
    plan = convert(
        {
            "subscriptionName": "projects/shop/subscriptions/orders",
            "value": "5.5",
            "activationValue": "2",
            "credentialsFromEnv": "GOOGLE_JSON",
        },
        container=KEY_CONTAINER,
    )
    assert plan.source == {
        "pubsub": {
            "project": "shop",
            "subscription": "orders",
            "serviceAccountKeySecretRef": {"name": "pubsub-secret", "key": "key.json"},
        }
    }
    assert (plan.messages_per_replica, plan.activation_backlog) == (5.5, 2.0)


def test_a_bare_subscription_takes_the_project_from_the_command_line() -> None:
    auth = {"secretTargetRef": [{"parameter": "GoogleApplicationCredentials", "name": "s", "key": "k"}]}
    plan = convert({"subscriptionName": "input"}, auth, Options(gcp_project="shop"))
    assert plan.source["pubsub"]["project"] == "shop"
    assert plan.source["pubsub"]["serviceAccountKeySecretRef"] == {"name": "s", "key": "k"}
    assert plan.messages_per_replica == pubsub.DEFAULT_VALUE
    with pytest.raises(NotConvertible, match="pass --gcp-project PROJECT"):
        convert({"subscriptionName": "input"}, auth)


def test_gcp_pod_identity_means_application_default_credentials() -> None:
    plan = convert(
        {"subscriptionName": "input"}, {"podIdentity": {"provider": "gcp"}}, Options(gcp_project="p")
    )
    assert "serviceAccountKeySecretRef" not in plan.source["pubsub"]
    assert any("Application Default Credentials" in note for note in plan.notes)


def test_the_removed_subscription_size_is_taken_as_the_value_with_a_note() -> None:
    plan = convert({"subscriptionName": "projects/p/subscriptions/s", "subscriptionSize": "3"})
    assert plan.messages_per_replica == 3.0
    assert any("subscriptionSize" in note for note in plan.notes)


@pytest.mark.parametrize(
    ("name", "metadata", "auth", "reason"),
    [
        ("a topic", {"topicName": "mytopic"}, None, "it watches a topic"),
        ("another metric", {"subscriptionName": "s", "mode": "OldestUnackedMessageAge"}, None, "mode Oldest"),
        ("no subscription", {}, None, "no subscription name"),
        ("a malformed name", {"subscriptionName": "projects/p/topics/t"}, None, "neither a subscription id"),
        (
            "a key written into a variable",
            {"subscriptionName": "s", "credentialsFromEnv": "PLAIN"},
            None,
            "not from a Secret key",
        ),
        (
            "Azure identity",
            {"subscriptionName": "s"},
            {"podIdentity": {"provider": "azure-workload"}},
            "not Google's",
        ),
    ],
)
def test_what_cannot_be_converted_says_why(
    name: str, metadata: dict[str, Any], auth: dict[str, Any] | None, reason: str
) -> None:
    container = {"env": [{"name": "PLAIN", "value": "{}"}]}
    with pytest.raises(NotConvertible, match=reason):
        convert(metadata, auth, Options(gcp_project="p"), container)
