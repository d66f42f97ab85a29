"""`qc_operator.builders`: the objects a QueueConsumer owns, built from plain data."""

from __future__ import annotations

from typing import Any

from qc_common import api, worker_env
from qc_operator import builders
from qc_operator.spec import parse
from tests.operator.specs import PUBSUB_SPEC, body, spec


def env_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in template["spec"]["containers"][0]["env"]}


def test_the_deployment_is_owned_selected_and_secure_by_default() -> None:
    owner = body(spec())
    deployment = builders.deployment(owner, parse(owner["spec"]), replicas=2)
    assert deployment["metadata"]["name"] == "orders-worker"
    assert deployment["metadata"]["ownerReferences"] == [
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "name": "orders",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    pod = template["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "orders-worker"
    assert pod["terminationGracePeriodSeconds"] == 300 + builders.DRAIN_MARGIN_SECONDS


def test_the_worker_environment_comes_from_the_spec_and_the_users_env_comes_last() -> None:
    raw = spec(
        worker={
            "image": "i",
            "task": "m:f",
            "concurrency": 3,
            "maxTasksPerChild": 100,
            "env": [{"name": "QC_LOG_LEVEL", "value": "DEBUG"}],
        }
    )
    env = env_of(builders.pod_template(body(raw), parse(raw)))
    assert env[worker_env.CONCURRENCY]["value"] == "3"
    assert env[worker_env.MAX_TASKS_PER_CHILD]["value"] == "100"
    assert env[worker_env.MAX_MEMORY_PER_CHILD_MIB]["value"] == "0", "the CRD's default: never"
    assert env[worker_env.SOURCE]["value"] == "rabbitmq"
    assert env[worker_env.DRAIN_GRACE_SECONDS]["value"] == "300"
    assert "value" not in env[worker_env.RABBITMQ_URL], "the broker URL stays in its Secret"
    names = [e["name"] for e in builders.pod_template(body(raw), parse(raw))["spec"]["containers"][0]["env"]]
    assert names[-1] == "QC_LOG_LEVEL"
    pubsub = env_of(builders.pod_template(body(PUBSUB_SPEC), parse(PUBSUB_SPEC)))
    assert pubsub[worker_env.PUBSUB_SUBSCRIPTION]["value"] == "orders-sub"
    assert worker_env.RABBITMQ_URL not in pubsub


def test_the_spec_hash_changes_with_the_pods_shape_and_only_then() -> None:
    def spec_hash(raw: dict[str, Any]) -> str:
        template = builders.pod_template(body(raw), parse(raw))
        digest: str = template["metadata"]["annotations"][api.SPEC_HASH_ANNOTATION]
        return digest

    base = spec()
    assert spec_hash(base) == spec_hash(spec())
    assert spec_hash(base) != spec_hash(spec(worker={**base["worker"], "concurrency": 9}))
    assert spec_hash(base) == spec_hash(spec(scaling={"maxReplicas": 50})), (
        "scaling settings do not roll pods"
    )


def test_the_pod_template_escape_hatch_merges_but_never_breaks_the_selector() -> None:
    overlay = {
        "metadata": {"labels": {api.CONSUMER_LABEL: "someone-else", "team": "a"}},
        "spec": {"nodeSelector": {"pool": "workers"}},
    }
    raw = spec(worker={"image": "i", "task": "m:f", "podTemplate": overlay})
    template = builders.pod_template(body(raw), parse(raw))
    assert template["spec"]["nodeSelector"] == {"pool": "workers"}
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["labels"][api.CONSUMER_LABEL] == "orders"
    assert template["spec"]["containers"][0]["name"] == "worker"


def test_the_other_children_share_labels_and_owner() -> None:
    owner = body(spec())
    children = [
        builders.service_account(owner),
        builders.pod_disruption_budget(owner),
        builders.metrics_service(owner),
    ]
    for child in children:
        assert child["metadata"]["labels"] == builders.labels("orders")
        assert child["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert builders.metrics_service(owner)["metadata"]["name"] == "orders-worker-metrics"
    assert builders.pod_disruption_budget(owner)["spec"]["maxUnavailable"] == 1


def test_a_service_account_key_is_mounted_for_googles_libraries_in_the_workers() -> None:
    raw = spec(PUBSUB_SPEC)
    raw["source"]["pubsub"]["serviceAccountKeySecretRef"] = {"name": "gcp", "key": "key.json"}
    parsed = parse(raw)
    template = builders.pod_template(body(raw), parsed)
    pod = template["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    key_file = env_of(template)[worker_env.GOOGLE_APPLICATION_CREDENTIALS]["value"]
    mount = mounts["google-service-account-key"]
    assert key_file.startswith(mount["mountPath"] + "/")
    assert mount["readOnly"] is True
    assert volumes["google-service-account-key"]["secret"]["secretName"] == "gcp"
    assert parsed.source.worker_secret_refs() == (parsed.source.secret_refs()[0],)
    without = env_of(builders.pod_template(body(PUBSUB_SPEC), parse(PUBSUB_SPEC)))
    assert worker_env.GOOGLE_APPLICATION_CREDENTIALS not in without, "no key: ADC (Workload Identity)"


def test_a_worker_without_resources_gets_memory_for_its_process_slots() -> None:
    raw = spec(worker={"image": "i", "task": "m:f", "concurrency": 8})
    container = builders.pod_template(body(raw), parse(raw))["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "326Mi"},  # 70 + 32 x 8
        "limits": {"memory": "489Mi"},
    }
    chosen = {"limits": {"memory": "1Gi"}}
    raw = spec(worker={"image": "i", "task": "m:f", "resources": chosen})
    assert builders.pod_template(body(raw), parse(raw))["spec"]["containers"][0]["resources"] == chosen
