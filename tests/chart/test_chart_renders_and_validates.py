"""The Helm chart: lint, value sets validated strictly, bad values rejected, manifests kept current."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from benchmarks import bench_operator
from devstack import manifests

CHART = manifests.CHART
# Named sets of `--set` values, each rendered and validated.
VALUES: dict[str, list[str]] = {
    "defaults": [],
    "namespaced": ["watch.allNamespaces=false", "watch.namespaces[0]=team-a", "watch.namespaces[1]=team-b"],
    "ha-with-peering": ["operator.replicas=2", "peering.enabled=true"],
    "sharded-ha": ["sharding.shards=3", "operator.replicas=2", "peering.enabled=true"],
    "monitoring": [
        "metrics.serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "metrics.workerPodMonitor.enabled=true",
        "dashboards.enabled=true",
    ],
    "no-crds": ["crds.install=false", "serviceAccount.create=false", "serviceAccount.name=existing"],
    "no-admission-policies": ["admissionPolicies.enabled=false"],
    "host-access-allowed": [
        "admissionPolicies.podSecurity.allowPrivileged=true",
        "admissionPolicies.requireSecretAccess=false",
    ],
    "narrow": [
        "rbac.secretNames[0]=rabbitmq",
        "admissionPolicies.podSecurity.allowedCapabilities[0]=NET_BIND_SERVICE",
    ],
}
VALUE_SETS: dict[str, list[str]] = {
    name: [arg for value in values for arg in ("--set", value)] for name, values in VALUES.items()
}
# No schema ships for the Prometheus operator's kinds; they are checked for shape below instead.
PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def helm(helm_binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary), *args], capture_output=True, text=True)


def render(helm_binary: Path, extra: list[str]) -> list[dict[str, Any]]:
    chart = ["qc", str(CHART), "-n", "qc-system", "--kube-version", manifests.KUBE_VERSION]
    result = helm(helm_binary, "template", *chart, *extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_helm_lint(helm_binary: Path) -> None:
    result = helm(helm_binary, "lint", str(CHART), "--strict", "--kube-version", manifests.KUBE_VERSION)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_validate_strictly(helm_binary: Path, name: str) -> None:
    documents = render(helm_binary, VALUE_SETS[name])
    kinds = {doc["kind"] for doc in documents}
    assert "Deployment" in kinds
    for doc in documents:
        if doc["kind"] in PROMETHEUS_OPERATOR_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["spec"]
            continue
        kubernetes_validate.validate(doc, manifests.KUBE_VERSION, strict=True)


def test_operator_pod_is_locked_down(helm_binary: Path) -> None:
    deployment = next(d for d in render(helm_binary, []) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]


def test_the_operator_runs_with_the_allocator_its_benchmark_measured(helm_binary: Path) -> None:
    deployment = next(d for d in render(helm_binary, []) if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PYTHONMALLOC"] == bench_operator.OPERATOR_PYTHONMALLOC


def test_namespaced_mode_grants_roles_only_in_watched_namespaces(helm_binary: Path) -> None:
    documents = render(helm_binary, VALUE_SETS["namespaced"])
    roles = [d for d in documents if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    cluster_roles = [d for d in documents if d["kind"] == "ClusterRole"]
    # The only cluster-wide grant is read access to CRDs, which kopf needs to find its resource.
    assert [rule["resources"] for role in cluster_roles for rule in role["rules"]] == [
        ["customresourcedefinitions"]
    ]
    assert all(
        set(rule["verbs"]) <= {"get", "list", "watch"} for role in cluster_roles for rule in role["rules"]
    )
    args = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    assert "--namespace=team-a" in args
    assert "--all-namespaces" not in args


def test_each_shard_is_its_own_deployment_with_its_own_peering(helm_binary: Path) -> None:
    deployments = [d for d in render(helm_binary, VALUE_SETS["sharded-ha"]) if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == [
        f"qc-queue-consumer-operator-shard-{i}" for i in range(3)
    ]
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments]
    assert len(set(selectors)) == 3, "a shard's Deployment must not select another shard's pods"
    for index, deployment in enumerate(deployments):
        env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["QC_SHARD_INDEX"] == str(index)
        assert env["QC_SHARD_COUNT"] == "3"
        assert env["QC_PEERING"] == f"queue-consumer-operator-shard-{index}"
        assert deployment["spec"]["replicas"] == 2


def test_no_rule_grants_delete_or_wildcards(helm_binary: Path) -> None:
    for name, extra in VALUE_SETS.items():
        for doc in render(helm_binary, extra):
            for rule in doc.get("rules", []):
                assert "delete" not in rule["verbs"], name
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "operator.replicas=2"], "/peering/enabled"),
        (["--set", "watch.allNamespaces=false"], "/watch/namespaces"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "operator.metricsPort=70000"], "/operator/metricsPort"),
        (["--set", "sharding.shards=0"], "/sharding/shards"),
        (["--set", "unknownKey=1"], "additional properties 'unknownKey' not allowed"),
        (
            ["--set", "admissionPolicies.podSecurity.allowedCapabilities[0]=net_admin"],
            "/admissionPolicies/podSecurity/allowedCapabilities/0",
        ),
        (["--set", "rbac.secretNames[0]=Not A Name"], "/rbac/secretNames/0"),
        (
            ["--set", "watch.namespaces[0]=Not_A_Namespace", "--set", "watch.allNamespaces=false"],
            "/watch/namespaces/0",
        ),
    ],
)
def test_values_schema_rejects_bad_values(helm_binary: Path, values: list[str], message: str) -> None:
    result = helm(
        helm_binary, "template", "qc", str(CHART), "--kube-version", manifests.KUBE_VERSION, *values
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_admission_policies_follow_their_values(helm_binary: Path) -> None:
    def policies(name: str) -> dict[str, dict[str, Any]]:
        documents = render(helm_binary, VALUE_SETS[name])
        bindings = {
            d["spec"]["policyName"] for d in documents if d["kind"] == "ValidatingAdmissionPolicyBinding"
        }
        found = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ValidatingAdmissionPolicy"}
        assert set(found) == bindings, name  # every policy bound, every binding to a policy
        for policy in found.values():
            assert policy["spec"]["failurePolicy"] == "Fail"
        return {key.removeprefix("qc-queue-consumer-operator-"): value for key, value in found.items()}

    assert set(policies("defaults")) == {
        "operator-pod-updates",
        "operator-owned-objects",
        "operator-worker-pod-security",
        "operator-worker-scale",
        "queueconsumer-spec",
    }
    assert policies("no-admission-policies") == {}
    # Host access allowed and no Secret check: nothing left to say about QueueConsumers.
    assert set(policies("host-access-allowed")) == {
        "operator-pod-updates",
        "operator-owned-objects",
        "operator-worker-scale",
    }
    narrow = policies("narrow")
    expressions = [v["expression"] for v in narrow["queueconsumer-spec"]["spec"]["validations"]]
    assert any('["NET_BIND_SERVICE"]' in e for e in expressions)
    username = "request.userInfo.username == 'system:serviceaccount:qc-system:qc-queue-consumer-operator'"
    for name in ("operator-pod-updates", "operator-owned-objects", "operator-worker-scale"):
        assert narrow[name]["spec"]["matchConditions"] == [
            {"name": "is-the-operator", "expression": username}
        ]
    secrets = [
        r
        for d in render(helm_binary, VALUE_SETS["narrow"])
        for r in d.get("rules", [])
        if r["resources"] == ["secrets"]
    ]
    assert secrets == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rabbitmq"], "verbs": ["get"]}
    ]


def test_no_rule_lets_the_operator_enumerate_secrets(helm_binary: Path) -> None:
    for name, extra in VALUE_SETS.items():
        for doc in render(helm_binary, extra):
            for rule in doc.get("rules", []):
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"], name


def test_manifests_are_generated_from_the_chart(helm_binary: Path) -> None:
    committed = manifests.OUTPUT.read_text()
    assert committed == manifests.render(helm_binary), "manifests/ is stale: run `make manifests`"
