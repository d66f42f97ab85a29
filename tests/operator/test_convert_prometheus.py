"""`convert.prometheus`: KEDA's prometheus trigger -> spec.backlog.prometheus, or the reason it cannot be."""

from __future__ import annotations

from typing import Any

import pytest

from qc_operator.convert import prometheus
from qc_operator.convert.model import NotConvertible, Options
from qc_operator.convert.params import TriggerParams

QUERY = {"serverAddress": "http://prometheus:9090", "query": "sum(queue_depth)", "threshold": "100.50"}
BEARER_AUTH = {"secretTargetRef": [{"parameter": "bearerToken", "name": "prom", "key": "token"}]}


def convert(metadata: dict[str, Any], auth: dict[str, Any] | None = None) -> Any:
    params = TriggerParams(metadata, auth or {}, "TriggerAuthentication ns/auth" if auth else "", {})
    return prometheus.convert({"type": "prometheus"}, params, Options())


def test_the_query_becomes_the_backlog_and_the_threshold_the_target() -> None:
    plan = convert({**QUERY, "activationThreshold": "5.5"})
    assert plan.source is None
    assert plan.backlog == {
        "prometheus": {"serverAddress": "http://prometheus:9090", "query": "sum(queue_depth)"}
    }
    assert (plan.messages_per_replica, plan.activation_backlog) == (100.5, 5.5)
    assert any("or vector(0)" in note for note in plan.notes)


def test_a_bearer_token_and_google_identity_carry_over() -> None:
    plan = convert({**QUERY, "authModes": "bearer", "ignoreNullValues": "false"}, BEARER_AUTH)
    assert plan.backlog["prometheus"]["bearerTokenSecretRef"] == {"name": "prom", "key": "token"}
    assert not any("or vector(0)" in note for note in plan.notes)
    google = convert(QUERY, {"podIdentity": {"provider": "gcp"}})
    assert google.backlog["prometheus"]["googleAuth"] == {}


@pytest.mark.parametrize(
    ("name", "metadata", "auth", "reason"),
    [
        ("basic", {"authModes": "basic"}, None, "authModes basic"),
        ("tls and basic", {"authModes": "tls,basic"}, None, "authModes basic, tls"),
        ("custom", {"authModes": "custom"}, None, "authModes custom"),
        (
            "bearer without a token",
            {"authModes": "bearer"},
            None,
            "authModes bearer, but bearerToken is not set",
        ),
        ("AWS identity", {}, {"podIdentity": {"provider": "aws"}}, "podIdentity aws"),
        ("no threshold", {"threshold": ""}, None, "no threshold"),
    ],
)
def test_what_cannot_be_converted_says_why(
    name: str, metadata: dict[str, Any], auth: dict[str, Any] | None, reason: str
) -> None:
    with pytest.raises(NotConvertible, match=reason):
        convert({**QUERY, **metadata}, auth)


def test_what_the_operator_does_not_send_gets_notes() -> None:
    plan = convert({**QUERY, "namespace": "tenant", "customHeaders": "X-A=b", "unsafeSsl": "true"})
    notes = "\n".join(plan.notes)
    for name in ("namespace", "customHeaders", "unsafeSsl"):
        assert f"prometheus trigger {name}=" in notes


def test_a_metadata_key_convert_does_not_know_gets_a_note() -> None:
    plan = convert({**QUERY, "cortexOrgID": "tenant-1", "queryFromEnv": "Q"})
    assert "prometheus trigger cortexOrgID='tenant-1': not carried over" in plan.notes
    assert not any("queryFromEnv" in note for note in plan.notes)
