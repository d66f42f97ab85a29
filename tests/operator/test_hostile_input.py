"""Hostile input on the real apiserver: what the schema can say, the API server refuses with its message;
what it cannot, the operator turns into a named condition and a Warning Event, never a traceback loop —
while a healthy neighbour keeps scaling, and objects it does not own are never touched. The operator runs
as the chart's ServiceAccount, under the chart's RBAC and admission policies.

The odd backlog answers come from a local HTTP server playing a PromQL endpoint gone wrong (NaN, a 5 MiB
answer, no answer at all, not JSON); everything else is the real apiserver and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.polling import WaitTimeout, wait_until
from devstack.services import RabbitMQ
from qc_common import api
from tests.operator.operator_harness import (
    QuietHandler,
    condition,
    create,
    create_secret,
    deployment_replicas,
    get_qc,
    namespace_with_queue,
    queue_consumer,
    serving,
    set_backlog,
)

RunOperator = Callable[[], AbstractContextManager[KopfRunner]]
HANG_SECONDS = 20


def with_worker(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["spec"]["worker"].update(fields)
    return changed


def renamed(body: dict[str, Any], name: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["metadata"]["name"] = name
    return changed


def with_rabbitmq(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["spec"]["source"]["rabbitmq"].update(fields)
    return changed


def with_scaling(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["spec"]["scaling"].update(fields)
    return changed


def rejected_cases(base: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(what, body, a part of the API server's message)"""
    policy = {"type": "Seconds", "value": 1, "periodSeconds": 15}
    no_source = copy.deepcopy(base)
    no_source["spec"]["source"] = {}
    return [
        ("a name of 49 characters", renamed(base, "a" * 49), "at most 48 characters"),
        ("a name starting with a digit", renamed(base, "1orders"), "must start with a letter"),
        ("an invalid quantity", with_worker(base, resources={"limits": {"memory": "lots"}}), "should match"),
        ("an env entry without a name", with_worker(base, env=[{"value": "x"}]), "Required value"),
        (
            "an env entry with value and valueFrom",
            with_worker(
                base, env=[{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
            ),
            "value or valueFrom, not both",
        ),
        (
            "podTemplate containers",
            with_worker(base, podTemplate={"spec": {"containers": [{"name": "x", "image": "y"}]}}),
            "may not set containers",
        ),
        (
            "podTemplate volumes",
            with_worker(base, podTemplate={"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            "may not set containers, initContainers or volumes",
        ),
        ("an image name with a space", with_worker(base, image="my image:1"), "should match"),
        (
            "a ServiceAccount name with capitals",
            with_worker(base, serviceAccountName="Bad_Name"),
            "should match",
        ),
        ("concurrency 0", with_worker(base, concurrency=0), "should be greater than or equal to 1"),
        ("a rate limit of 0", with_worker(base, maxMessagesPerSecond=0), "should be greater than 0"),
        ("a negative rate limit", with_worker(base, maxMessagesPerSecond=-5), "should be greater than 0"),
        ("a task that is not module:function", with_worker(base, task="handle"), "should match"),
        ("an unknown pull policy", with_worker(base, imagePullPolicy="Sometimes"), "Unsupported value"),
        ("min above max", with_scaling(base, minReplicas=5, maxReplicas=2), "must not exceed"),
        (
            "a polling interval of 0",
            with_scaling(base, pollingIntervalSeconds=0),
            "greater than or equal to 1",
        ),
        ("a tolerance of 2", with_scaling(base, tolerance=2), "less than or equal to 1"),
        ("negative fallback", with_scaling(base, fallbackReplicas=-1), "greater than or equal to 0"),
        (
            "an unknown rate policy",
            with_scaling(base, behavior={"scaleUp": {"policies": [policy]}}),
            "Unsupported value",
        ),
        ("no source", no_source, "set exactly one source"),
        (
            "the hpa preset without a target",
            with_scaling(base, preset="hpa", messagesPerReplica=None),
            "preset hpa needs messagesPerReplica",
        ),
        (
            "scaling.hpa without the hpa preset",
            with_scaling(base, hpa={"cooldownSeconds": 60}),
            "scaling.hpa applies only with scaling.preset hpa",
        ),
    ]


class OddSource(QuietHandler):
    """A PromQL endpoint gone wrong, one way per path prefix."""

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        kind = self.path.split("/")[1]
        if kind == "hang":
            time.sleep(HANG_SECONDS)
            return
        body = {
            "nan": b'{"status":"success","data":{"resultType":"vector","result":[{"value":[0,"NaN"]}]}}',
            "huge": b'{"status":"success","padding":"' + b"x" * (5 * 1024 * 1024) + b'"}',
            "notjson": b"<html>proxy error</html>",
            "shape": b'{"status":"success","data":{"resultType":"vector","result":[{"value":7}]}}',
        }[kind]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def odd_source() -> Iterator[str]:
    with serving(OddSource) as address:
        yield f"http://{address}"


def promql(base: dict[str, Any], name: str, address: str) -> dict[str, Any]:
    body = renamed(base, name)
    body["spec"]["backlog"] = {"prometheus": {"serverAddress": address, "query": "sum(queue_depth)"}}
    return body


def warnings_for(admin: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    events = client.CoreV1Api(admin).list_namespaced_event(namespace).items
    return {e.reason: e.message for e in events if e.involved_object.name == name and e.type == "Warning"}


def foreign_deployment(namespace: str, name: str) -> dict[str, Any]:
    labels = {"app": "someone-else"}
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "example.com/theirs:1"}]},
            },
        },
    }


def test_hostile_queueconsumers_are_refused_or_reported_and_a_neighbour_keeps_scaling(
    admin: client.ApiClient, rabbitmq: RabbitMQ, odd_source: str, run_operator_as_chart: RunOperator
) -> None:
    namespace, queue = namespace_with_queue(admin, rabbitmq, "hostile", backlog=30)
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    not_utf8 = base64.b64encode(b"\xff\xfe\x00").decode()
    core.create_namespaced_secret(namespace, {"metadata": {"name": "binary"}, "data": {"url": not_utf8}})
    create_secret(admin, namespace, "badport", {"url": rabbitmq.amqp_url, "m": "http://u:p@h:port"})
    apps.create_namespaced_deployment(namespace, foreign_deployment(namespace, "taken-worker"))
    base = queue_consumer("base", queue, maxReplicas=4, messagesPerReplica=10)

    # 1. What the schema can say: the API server refuses it, with a message that says why.
    for what, body, message in rejected_cases(base):
        with pytest.raises(ApiException) as refused:
            create(admin, namespace, body)
        assert refused.value.status == 422, what
        assert message in str(refused.value.body), f"{what}: {refused.value.body}"

    # 2. What only the operator can check: a condition with a reason, and a Warning Event.
    expected: dict[str, tuple[str, str, str]] = {}  # name -> (condition, reason, message part)
    accepted = [
        (
            renamed(with_rabbitmq(base, connectionSecretRef={"name": "nope", "key": "url"}), "no-secret"),
            ("Ready", "SecretMissing", "'nope' not found"),
        ),
        (
            renamed(with_rabbitmq(base, connectionSecretRef={"name": "rabbitmq", "key": "nokey"}), "no-key"),
            ("Ready", "SecretMissing", "has no key 'nokey'"),
        ),
        (
            renamed(
                with_rabbitmq(base, connectionSecretRef={"name": "binary", "key": "url"}), "binary-secret"
            ),
            ("Ready", "SecretMissing", "not UTF-8"),
        ),
        (renamed(base, "taken"), ("Ready", "Conflict", "not controlled by this QueueConsumer")),
        (
            renamed(with_worker(base, podTemplate={"spec": {"restartPolicy": "Never"}}), "refused"),
            ("Ready", "RejectedByAPIServer", "restartPolicy"),
        ),
        (
            renamed(with_worker(base, serviceAccountName="does-not-exist"), "no-sa"),
            ("Ready", "ServiceAccountMissing", "'does-not-exist'"),
        ),
        (
            renamed(with_rabbitmq(base, managementSecretRef={"name": "badport", "key": "m"}), "bad-port"),
            ("SourceError", "ReadFailed", "port is not a number"),
        ),
        (promql(base, "nan-source", f"{odd_source}/nan"), ("SourceError", "ReadFailed", "not a backlog")),
        (promql(base, "huge-source", f"{odd_source}/huge"), ("SourceError", "ReadFailed", "larger than")),
        (promql(base, "hung-source", f"{odd_source}/hang"), ("SourceError", "ReadFailed", "no answer")),
        (promql(base, "html-source", f"{odd_source}/notjson"), ("SourceError", "ReadFailed", "not JSON")),
        (promql(base, "odd-shape", f"{odd_source}/shape"), ("SourceError", "ReadFailed", "not a number")),
    ]
    paused_badly = renamed(base, "paused-badly")
    paused_badly["metadata"]["annotations"] = {api.PAUSED_REPLICAS_ANNOTATION: "²"}
    paused_high = renamed(with_scaling(base, maxReplicas=3), "paused-high")
    paused_high["metadata"]["annotations"] = {api.PAUSED_REPLICAS_ANNOTATION: "40"}
    with run_operator_as_chart() as runner:
        create(admin, namespace, renamed(base, "neighbour"))
        for body, outcome in accepted:
            create(admin, namespace, body)
            expected[body["metadata"]["name"]] = outcome
        create(admin, namespace, paused_badly)
        create(admin, namespace, paused_high)

        def reported(name: str) -> bool:
            kind, reason, part = expected[name]
            found = condition(get_qc(admin, namespace, name), kind)
            failing = "False" if kind == "Ready" else "True"
            return bool(
                found
                and found["status"] == failing
                and found["reason"] == reason
                and part in found["message"]
            )

        for name in expected:
            try:
                wait_until(lambda name=name: reported(name), 45, f"{name}: {expected[name]}")  # type: ignore[misc]
            except WaitTimeout as timeout:
                status = get_qc(admin, namespace, name).get("status")
                raise AssertionError(f"{timeout}; its status: {status}") from timeout
            event = expected[name][1] if expected[name][0] == "Ready" else "SourceError"
            posted = lambda name=name, event=event: event in warnings_for(admin, namespace, name)  # type: ignore[misc]  # noqa: E731
            wait_until(posted, 15, f"a Warning Event {event} for {name}")

        # The foreign Deployment was neither merged into nor scaled.
        theirs = apps.read_namespaced_deployment("taken-worker", namespace)
        assert theirs.spec.replicas == 2
        assert api.CONSUMER_LABEL not in (theirs.metadata.labels or {})
        assert theirs.spec.template.spec.containers[0].image == "example.com/theirs:1"
        # A pause annotation that is not a number holds the count; one above maxReplicas holds maxReplicas.
        paused = wait_until(
            lambda: condition(get_qc(admin, namespace, "paused-badly"), "Paused"), 30, "Paused"
        )
        assert paused["status"] == "True"
        assert "is not a number" in paused["message"]
        replicas = lambda name: apps.read_namespaced_deployment(f"{name}-worker", namespace).spec.replicas  # noqa: E731
        wait_until(lambda: replicas("paused-high") == 3, 30, "paused-replicas 40 held at maxReplicas 3")
        # The healthy neighbour scaled all along: 30 messages at 10 per replica.
        wait_until(lambda: replicas("neighbour") == 3, 30, "the neighbour scaled to 3")
        ready = condition(get_qc(admin, namespace, "neighbour"), "Ready")
        assert ready is not None
        assert ready["status"] == "True"
        # Each report was posted once, not once per tick.
        events = client.CoreV1Api(admin).list_namespaced_event(namespace).items
        conflict = [e for e in events if e.involved_object.name == "taken" and e.reason == "Conflict"]
        assert len(conflict) == 1
        assert (conflict[0].count or 1) == 1
    assert runner.exception is None


def test_what_the_spec_drops_leaves_the_deployment_and_children_deleted_by_hand_come_back(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator_as_chart: RunOperator
) -> None:
    namespace, queue = namespace_with_queue(admin, rabbitmq, "owned", backlog=0)
    body = queue_consumer("orders", queue)
    body["spec"]["worker"]["env"] = [{"name": "EXTRA", "value": "1"}, {"name": "KEEP", "value": "2"}]
    body["spec"]["worker"]["podTemplate"] = {"spec": {"nodeSelector": {"pool": "workers"}}}
    core, apps, policy = client.CoreV1Api(admin), client.AppsV1Api(admin), client.PolicyV1Api(admin)
    custom = client.CustomObjectsApi(admin)

    def pod_spec() -> Any:
        return apps.read_namespaced_deployment("orders-worker", namespace).spec.template.spec

    def env_names() -> set[str]:
        try:
            return {e.name for e in pod_spec().containers[0].env or []}
        except ApiException as error:
            if error.status == 404:  # not created yet
                return set()
            raise

    with run_operator_as_chart() as runner:
        create(admin, namespace, body)
        wait_until(lambda: "EXTRA" in env_names(), 30, "the Deployment with the spec's env")
        assert pod_spec().node_selector == {"pool": "workers"}
        # A JSON merge patch: the env list is replaced, and null removes podTemplate.
        change = {"spec": {"worker": {"env": [{"name": "KEEP", "value": "2"}], "podTemplate": None}}}
        custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "orders", change)
        wait_until(lambda: "EXTRA" not in env_names(), 30, "the env var removed from the Deployment")
        assert "KEEP" in env_names()
        assert pod_spec().node_selector is None, "a podTemplate field removed from the spec is removed"

        core.delete_namespaced_service_account("orders-worker", namespace)
        core.delete_namespaced_service("orders-worker-metrics", namespace)
        policy.delete_namespaced_pod_disruption_budget("orders-worker", namespace)
        apps.delete_namespaced_deployment("orders-worker", namespace)

        def back(read: Callable[[str, str], Any], name: str) -> bool:
            try:
                found = read(name, namespace)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            return found.metadata.deletion_timestamp is None

        wait_until(lambda: back(core.read_namespaced_service_account, "orders-worker"), 30, "the SA back")
        wait_until(
            lambda: back(core.read_namespaced_service, "orders-worker-metrics"), 30, "the Service back"
        )
        wait_until(lambda: back(policy.read_namespaced_pod_disruption_budget, "orders-worker"), 30, "the PDB")
        wait_until(lambda: back(apps.read_namespaced_deployment, "orders-worker"), 30, "the Deployment back")
    assert runner.exception is None


@pytest.mark.slow
def test_a_restart_inside_the_scale_down_window_and_the_cooldown_changes_nothing(
    admin: client.ApiClient, rabbitmq: RabbitMQ, run_operator_as_chart: RunOperator
) -> None:
    namespace, queue = namespace_with_queue(admin, rabbitmq, "restart", backlog=40)
    window_seconds, cooldown_seconds = 30, 25
    body = queue_consumer(
        "orders",
        queue,
        maxReplicas=8,
        messagesPerReplica=10,
        cooldownSeconds=cooldown_seconds,
        behavior={"scaleDown": {"stabilizationWindowSeconds": window_seconds}},
    )
    replicas = lambda: deployment_replicas(admin, namespace, "orders")  # noqa: E731

    def holds(count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert replicas() == count, f"left {count} replicas {deadline - time.monotonic():.0f} s too early"
            time.sleep(0.5)

    with run_operator_as_chart() as first:
        create(admin, namespace, body)
        wait_until(lambda: replicas() == 4, 30, "scale out to 4")
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 10))  # now asks for 1, held by the window
        time.sleep(8)  # the new backlog reaches the management API and a few ticks see it
    assert first.exception is None
    window_started = time.monotonic() - 8
    with run_operator_as_chart() as second:  # a new process: a new monotonic clock, only the status to go on
        holds(4, window_seconds - (time.monotonic() - window_started) - 4)
        wait_until(lambda: replicas() == 1, 30, "scale in to 1 once the window has passed")
        asyncio.run(set_backlog(rabbitmq.amqp_url, queue, 0))
        time.sleep(8)
    assert second.exception is None
    idle_since = time.monotonic() - 8
    with run_operator_as_chart() as third:
        holds(1, cooldown_seconds - (time.monotonic() - idle_since) - 4)
        wait_until(lambda: replicas() == 0, 40, "cool down to 0 once the cooldown has passed")
    assert third.exception is None
