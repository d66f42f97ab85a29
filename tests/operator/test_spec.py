"""`qc_operator.spec`: the spec parsed with the CRD's defaults, sources found through the registry, and the
checks the schema cannot make. Plain data, no API server."""

from __future__ import annotations

from typing import Any

import pytest

from qc_common import worker_env
from qc_operator import scaling
from qc_operator.errors import SpecError
from qc_operator.sources.prometheus import PromQLSettings
from qc_operator.sources.pubsub import PubSubSettings
from qc_operator.sources.rabbitmq import RabbitMQSettings
from qc_operator.spec import SecretKeyRef, parse, parse_policy
from tests.operator.specs import PUBSUB_SPEC, RABBITMQ_SPEC, spec


def test_a_minimal_rabbitmq_spec_gets_every_default_from_the_crd() -> None:
    parsed = parse(RABBITMQ_SPEC)
    assert isinstance(parsed.source, RabbitMQSettings)
    assert parsed.source.vhost == "/"
    assert parsed.backlog is parsed.source, "the broker reads its own backlog unless spec.backlog says"
    assert parsed.backlog_description == "rabbitmq"
    assert (parsed.worker.concurrency, parsed.worker.task_time_limit_seconds) == (8, 300)
    assert parsed.worker.max_delivery_attempts == 5
    assert parsed.worker.effective_drain_grace_seconds == 300, "the drain grace defaults to the time limit"
    assert parsed.polling_interval_seconds == 5
    policy = parsed.policy
    assert (policy.min_replicas, policy.max_replicas, policy.tolerance) == (0, 10, 0.2)
    assert policy.target_drain_seconds == 20
    assert policy.messages_per_replica is None
    assert policy.scale_up == scaling.ScalingRules(
        0, (scaling.RatePolicy("Pods", 10, 15), scaling.RatePolicy("Percent", 400, 15)), "Max"
    )
    assert policy.scale_down == scaling.ScalingRules(120, (scaling.RatePolicy("Percent", 50, 15),), "Max")


def test_the_input_is_not_changed_by_defaulting() -> None:
    raw = spec()
    parse(raw)
    assert raw == RABBITMQ_SPEC


def test_pubsub_with_a_promql_backlog() -> None:
    promql = {"prometheus": {"serverAddress": "http://prom:9090", "query": "sum(x)"}}
    parsed = parse(spec(PUBSUB_SPEC, backlog=promql))
    assert isinstance(parsed.source, PubSubSettings)
    assert parsed.source.monitoring_endpoint == "https://monitoring.googleapis.com"
    assert isinstance(parsed.backlog, PromQLSettings)
    assert parsed.backlog_description == "pubsub (prometheus)"
    assert parsed.backlog.secret_refs() == ()


def test_each_direction_of_behavior_defaults_field_by_field() -> None:
    policy = parse_policy({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}})
    assert policy.scale_down.stabilization_window_seconds == 30
    assert policy.scale_down.policies == (scaling.RatePolicy("Percent", 50, 15),)
    explicit_empty = parse_policy({"behavior": {"scaleUp": {"policies": []}}})
    assert explicit_empty.scale_up.policies == parse_policy({}).scale_up.policies


def test_the_workers_get_the_source_settings_and_the_secret_by_reference() -> None:
    parsed = parse(RABBITMQ_SPEC)
    env = {e["name"]: e for e in parsed.source.worker_environment()}
    assert env[worker_env.RABBITMQ_QUEUE]["value"] == "orders"
    assert env[worker_env.RABBITMQ_URL] == {
        "name": worker_env.RABBITMQ_URL,
        "valueFrom": {"secretKeyRef": {"name": "rabbitmq", "key": "url"}},
    }
    assert parsed.source.worker_secret_refs() == (SecretKeyRef("rabbitmq", "url"),)
    assert parsed.backlog.secret_refs() == (SecretKeyRef("rabbitmq", "managementUrl"),)


def without_management() -> dict[str, Any]:
    raw = spec()
    del raw["source"]["rabbitmq"]["managementSecretRef"]
    return raw


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("no source", spec(source={}), "spec.source must set exactly one of pubsub, rabbitmq"),
        (
            "two sources",
            spec(source={**RABBITMQ_SPEC["source"], **PUBSUB_SPEC["source"]}),
            "exactly one of pubsub, rabbitmq",
        ),
        ("RabbitMQ with no way to read its backlog", without_management(), "needs managementSecretRef"),
        ("min above max", spec(scaling={"minReplicas": 3, "maxReplicas": 2}), "exceeds maxReplicas"),
        ("fallback above max", spec(scaling={"fallbackReplicas": 20}), r"fallbackReplicas \(20\) exceeds"),
        ("no worker", {"source": RABBITMQ_SPEC["source"]}, "spec.worker is required"),
        ("a required field missing", spec(worker={"image": "x"}), "no 'task'"),
        (
            "a number that is not one",
            spec(worker={**RABBITMQ_SPEC["worker"], "concurrency": "x"}),
            "malformed",
        ),
    ],
)
def test_what_cannot_be_acted_on_is_a_spec_error_with_a_message(name: str, raw: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse(raw)


def test_the_hpa_preset_is_exactly_keda_and_the_hpa_in_one_line() -> None:
    policy = parse_policy(
        {"preset": "hpa", "messagesPerReplica": 100, "maxReplicas": 20, "cooldownSeconds": 5}
    )
    assert policy == scaling.hpa_compatible(0, 20, 100.0)
    assert policy.initial_recommendation
    with pytest.raises(SpecError, match="preset hpa needs messagesPerReplica"):
        parse_policy({"preset": "hpa"})


def test_the_hpa_preset_takes_a_scaledobjects_own_cooldown_and_behavior_field_by_field() -> None:
    policy = parse_policy(
        {
            "preset": "hpa",
            "messagesPerReplica": 10,
            "hpa": {
                "cooldownSeconds": 30,
                "behavior": {
                    "scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                    "scaleDown": {"stabilizationWindowSeconds": 60, "tolerance": 0.05},
                },
            },
        }
    )
    # Every field left out is the HPA's default, not this CRD's (scaleDown window 120 s here, the HPA's 300).
    assert policy == scaling.hpa_compatible(
        0,
        10,
        10.0,
        cooldown_seconds=30.0,
        scale_up=scaling.ScalingRules(0, (scaling.RatePolicy("Pods", 2, 60),)),
        scale_down=scaling.ScalingRules(60, scaling.HPA_SCALE_DOWN.policies),
        scale_down_tolerance=0.05,
    )


def test_each_direction_may_have_its_own_tolerance() -> None:
    policy = parse_policy({"tolerance": 0.3, "behavior": {"scaleUp": {"tolerance": 0.05}}})
    assert policy.scale_up_tolerance == 0.05
    assert policy.scale_down_tolerance is None, "unset: scaling.tolerance"
    assert policy.tolerance == 0.3


def test_the_workers_declare_a_queue_only_when_the_spec_says_so() -> None:
    passive = {e["name"] for e in parse(RABBITMQ_SPEC).source.worker_environment()}
    assert worker_env.RABBITMQ_DECLARE_QUEUE not in passive, "by default the queue must exist as declared"
    raw = spec()
    raw["source"]["rabbitmq"]["queueArguments"] = {"x-queue-type": "quorum", "x-delivery-limit": 5}
    env = {e["name"]: e.get("value") for e in parse(raw).source.worker_environment()}
    assert worker_env.RABBITMQ_DECLARE_QUEUE not in env, "the arguments alone tell, they do not declare"
    assert env[worker_env.RABBITMQ_QUEUE_ARGUMENTS] == '{"x-delivery-limit": 5, "x-queue-type": "quorum"}'
    raw["source"]["rabbitmq"]["declareQueue"] = True
    env = {e["name"]: e.get("value") for e in parse(raw).source.worker_environment()}
    assert env[worker_env.RABBITMQ_DECLARE_QUEUE] == "true"
