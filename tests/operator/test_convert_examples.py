"""`qc-operator convert` on the ScaledObjects of KEDA's own documentation (tests/operator/convert_examples/,
copied verbatim, each file naming its page): each converts, or fails with the reason; each QueueConsumer
it writes is accepted by the real apiserver's schema, kept field for field, and parsed by `spec.parse`."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from qc_common import api
from qc_operator import schema, spec
from qc_operator.__main__ import build_parser, main
from qc_operator.convert import cli
from tests.operator.operator_harness import new_namespace

EXAMPLES = Path(__file__).parent / "convert_examples"
DEPLOYMENTS = EXAMPLES / "deployments.yaml"
TASK = ["--task", "consumer.tasks:handle"]
MANAGEMENT = ["--rabbitmq-management-secret", "rabbitmq-management/url"]
CONNECTION = ["--rabbitmq-connection-secret", "rabbitmq-amqp/url"]
QUEUE = ["--rabbitmq-queue", "requests", *CONNECTION]
Edit = Callable[[list[dict[str, Any]]], None]


def convert(text: str, *flags: str) -> tuple[int, str, str]:
    """The subcommand as `qc-operator convert - deployments.yaml FLAGS` runs it, the example on stdin."""
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["convert", "-", str(DEPLOYMENTS), *flags])
    code = cli.run(args, io.StringIO(text), out, err)
    return code, out.getvalue(), err.getvalue()


def path(short: str) -> Path:
    """An example by its page and number ("rabbitmq-queue--01"), or our own by its name."""
    (found,) = list(EXAMPLES.glob(f"scalers-{short}-*.yaml")) or [EXAMPLES / f"{short}.yaml"]
    return found


def example(name: str, edit: Edit | None = None) -> str:
    text = path(name).read_text()
    if edit is None:
        return text
    documents = [d for d in yaml.safe_load_all(text) if d]
    edit(documents)
    return yaml.safe_dump_all(documents)


def _kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in documents if d["kind"] == kind)


def auth_in_the_scaledobjects_namespace(documents: list[dict[str, Any]]) -> None:
    """The prometheus page puts its TriggerAuthentication in `default` and its ScaledObject in `keda`: KEDA
    would not find it either. Moved next to the ScaledObject, the example converts as its auth allows."""
    _kind(documents, "TriggerAuthentication")["metadata"]["namespace"] = "keda"


def auth_ref_named_as_the_auth(documents: list[dict[str, Any]]) -> None:
    """Three rabbitmq examples refer to `rabbitmq-trigger-auth` and define
    `keda-trigger-auth-rabbitmq-conn`: renamed, they convert as far as their triggers allow."""
    for trigger in _kind(documents, "ScaledObject")["spec"]["triggers"]:
        trigger["authenticationRef"]["name"] = "keda-trigger-auth-rabbitmq-conn"


def rabbitmq_ref(resource: dict[str, Any], which: str) -> dict[str, str]:
    ref: dict[str, str] = resource["spec"]["source"]["rabbitmq"][which]
    return ref


# (example file, edit, flags, what the QueueConsumer has)
CONVERTED: list[tuple[str, Edit | None, list[str], Callable[[dict[str, Any]], Any]]] = [
    (
        "rabbitmq-queue--01",
        None,
        MANAGEMENT,
        lambda r: rabbitmq_ref(r, "connectionSecretRef") == {"name": "keda-rabbitmq-secret", "key": "host"},
    ),
    (
        "rabbitmq-queue--02",
        None,
        MANAGEMENT,
        lambda r: rabbitmq_ref(r, "managementSecretRef") == {"name": "rabbitmq-management", "key": "url"},
    ),
    (
        "rabbitmq-queue--03",
        None,
        MANAGEMENT,
        lambda r: r["spec"]["scaling"]["messagesPerReplica"] == 20,
    ),
    (
        "rabbitmq-queue--04",
        None,
        CONNECTION,
        lambda r: rabbitmq_ref(r, "managementSecretRef") == {"name": "keda-rabbitmq-secret", "key": "host"},
    ),
    (
        "rabbitmq-queue--05",
        None,
        CONNECTION,
        lambda r: r["spec"]["scaling"]["messagesPerReplica"] == 20,
    ),
    (
        "gcp-pub-sub--01",
        None,
        ["--gcp-project", "shop"],
        lambda r: (
            r["spec"]["source"]["pubsub"]
            == {
                "project": "shop",
                "subscription": "mysubscription",
                "serviceAccountKeySecretRef": {
                    "name": "pubsub-secret",
                    "key": "GOOGLE_APPLICATION_CREDENTIALS_JSON",
                },
            }
        ),
    ),
    (
        "gcp-pub-sub--03",
        None,
        ["--gcp-project", "shop"],
        lambda r: r["spec"]["source"]["pubsub"]["serviceAccountKeySecretRef"]["name"] == "pubsub-secret",
    ),
    (
        "gcp-pub-sub--04",
        None,
        ["--gcp-project", "shop"],
        lambda r: "serviceAccountKeySecretRef" not in r["spec"]["source"]["pubsub"],
    ),
    (
        "gcp-pub-sub--05",
        None,
        ["--gcp-project", "shop"],
        lambda r: r["spec"]["scaling"]["messagesPerReplica"] == 10,
    ),
    (
        "prometheus--01",
        None,
        QUEUE,
        lambda r: r["spec"]["backlog"]["prometheus"]["serverAddress"] == "http://<prometheus-host>:9090",
    ),
    (
        "prometheus--02",
        auth_in_the_scaledobjects_namespace,
        QUEUE,
        lambda r: (
            r["spec"]["backlog"]["prometheus"]["bearerTokenSecretRef"]
            == {"name": "keda-prom-secret", "key": "bearerToken"}
            and r["spec"]["scaling"]["maxReplicas"] == 12
        ),
    ),
    (
        "prometheus--09",
        None,
        ["--pubsub-subscription", "projects/my-google-project/subscriptions/requests"],
        lambda r: (
            r["spec"]["backlog"]["prometheus"]["googleAuth"] == {}
            and r["spec"]["scaling"]["minReplicas"] == 1
        ),
    ),
    (
        "ours-every-scaledobject-field",
        None,
        CONNECTION,
        lambda r: (
            r["metadata"]["annotations"]
            == {api.PAUSED_ANNOTATION: "true", api.PAUSED_REPLICAS_ANNOTATION: "0"}
        ),
    ),
]

REFUSED: list[tuple[str, Edit | None, list[str], str]] = [
    ("rabbitmq-queue--06", None, CONNECTION, "useRegex selects queues"),
    ("rabbitmq-queue--07", None, CONNECTION, "podIdentity azure-workload"),
    (
        "rabbitmq-queue--08",
        None,
        CONNECTION,
        "TriggerAuthentication default/rabbitmq-trigger-auth, which is not in the input",
    ),
    ("rabbitmq-queue--08", auth_ref_named_as_the_auth, CONNECTION, "metricType Value"),
    ("rabbitmq-queue--09", auth_ref_named_as_the_auth, CONNECTION, "metricType Value"),
    ("rabbitmq-queue--10", None, CONNECTION, "advanced.scalingModifiers"),
    ("rabbitmq-queue--11", auth_ref_named_as_the_auth, CONNECTION, "metricType Value"),
    ("rabbitmq-queue--01", None, [], "pass --rabbitmq-management-secret"),
    ("gcp-pub-sub--01", None, [], "pass --gcp-project PROJECT"),
    ("gcp-pub-sub--02", None, [], "it watches a topic"),
    ("prometheus--01", None, [], "pass --rabbitmq-queue QUEUE"),
    ("prometheus--02", None, QUEUE, "TriggerAuthentication keda/keda-prom-creds, which is not in the input"),
    ("prometheus--03", auth_in_the_scaledobjects_namespace, QUEUE, "authModes basic"),
    ("prometheus--04", auth_in_the_scaledobjects_namespace, QUEUE, "authModes tls"),
    ("prometheus--05", auth_in_the_scaledobjects_namespace, QUEUE, "authModes basic, tls"),
    ("prometheus--06", auth_in_the_scaledobjects_namespace, QUEUE, "authModes custom"),
    ("prometheus--07", None, QUEUE, "podIdentity azure-workload"),
    # The page's example is a Go template ({{.AwsRegion}}), not YAML until rendered.
    ("prometheus--08", None, QUEUE, "stdin is not YAML"),
]


def test_every_documented_example_is_covered() -> None:
    covered = {path(name).name for name, *_ in CONVERTED} | {path(name).name for name, *_ in REFUSED}
    assert covered == {p.name for p in EXAMPLES.glob("*.yaml")} - {DEPLOYMENTS.name}


def _converted(name: str, edit: Edit | None, flags: list[str], keep: bool) -> list[dict[str, Any]]:
    code, out, err = convert(example(name, edit), *TASK, *flags, *(["--keep-keda-behaviour"] if keep else []))
    assert (code, err) == (0, ""), err
    assert out.startswith("# Converted by qc-operator convert from ScaledObject ")
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("keep", [False, True], ids=["our-defaults", "keep-keda-behaviour"])
@pytest.mark.parametrize(("name", "edit", "flags", "check"), CONVERTED, ids=[c[0] for c in CONVERTED])
def test_a_documented_example_converts_to_a_queueconsumer_spec_parse_accepts(
    name: str, edit: Edit | None, flags: list[str], check: Callable[[dict[str, Any]], Any], keep: bool
) -> None:
    (resource,) = _converted(name, edit, flags, keep)
    assert (resource["apiVersion"], resource["kind"]) == (api.API_VERSION, api.KIND)
    assert check(resource), resource
    parsed = spec.parse(resource["spec"])
    assert parsed.worker.task == "consumer.tasks:handle"
    assert (resource["spec"]["scaling"].get("preset") == "hpa") == keep
    if keep:
        assert parsed.policy.tolerance == 0.1
        assert parsed.policy.initial_recommendation


@pytest.mark.parametrize(
    ("name", "edit", "flags", "reason"), REFUSED, ids=[f"{r[0]}-{r[3][:24]}" for r in REFUSED]
)
def test_what_cannot_be_converted_exits_1_with_the_reason_and_prints_nothing(
    name: str, edit: Edit | None, flags: list[str], reason: str
) -> None:
    code, out, err = convert(example(name, edit), *TASK, *flags)
    assert (code, out) == (1, "")
    assert err.startswith("qc-operator convert: ")
    assert reason in err


def test_an_unsupported_trigger_type_and_a_missing_target_are_errors() -> None:
    documents = [d for d in yaml.safe_load_all(example("prometheus--01")) if d]
    documents[0]["spec"]["triggers"].append({"type": "cpu", "metadata": {"value": "50"}})
    code, _, err = convert(yaml.safe_dump_all(documents), *TASK, *QUEUE)
    assert code == 1
    assert "trigger type cpu is not supported" in err
    documents[0]["spec"]["triggers"].pop()
    documents[0]["spec"]["scaleTargetRef"]["name"] = "elsewhere"
    code, _, err = convert(yaml.safe_dump_all(documents), *TASK, *QUEUE)
    assert code == 1
    assert "its target, Deployment default/elsewhere, is not in the input" in err


def test_the_subcommand_runs_as_python_m_qc_operator_and_the_run_command_still_parses(
    tmp_path: Path,
) -> None:
    source = path("rabbitmq-queue--04")
    done = subprocess.run(
        [sys.executable, "-m", "qc_operator", "convert", str(source), str(DEPLOYMENTS), *TASK, *CONNECTION],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["metadata"]["name"] == "rabbitmq-deployment"
    assert main(["convert", str(tmp_path / "absent.yaml"), *TASK]) == 1
    code, out, err = convert(example("rabbitmq-queue--04"), *TASK, "--rabbitmq-connection-secret", "no-key")
    assert (code, out) == (1, "")
    assert "--rabbitmq-connection-secret takes NAME/KEY" in err
    run = build_parser().parse_args(["run", "--namespace", "a", "--verbose"])
    assert (run.command, run.namespace, run.verbose) == ("run", ["a"], True)


def test_every_converted_queueconsumer_is_accepted_and_kept_by_the_real_apiserver(
    admin: client.ApiClient,
) -> None:
    namespace = new_namespace(admin, "convert")
    objects = client.CustomObjectsApi(admin)
    for number, (name, edit, flags, _) in enumerate(CONVERTED):
        for keep in (False, True):
            (resource,) = _converted(name, edit, flags, keep)
            resource["metadata"].update(
                namespace=namespace,
                name=f"e{number}{'k' if keep else 'o'}-{resource['metadata']['name']}"[:48],
            )
            objects.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, resource)
            stored: dict[str, Any] = objects.get_namespaced_custom_object(  # type: ignore[assignment]
                api.GROUP, api.VERSION, namespace, api.PLURAL, resource["metadata"]["name"]
            )
            # Nothing pruned: the stored spec is ours with the CRD's defaults filled in.
            assert stored["spec"] == schema.with_defaults(resource["spec"]), name
            assert stored["metadata"].get("annotations", {}) == resource["metadata"].get("annotations", {})
            spec.parse(stored["spec"])


def test_a_deployment_as_the_apiserver_returns_it_in_a_kubectl_list_converts_without_its_defaults(
    admin: client.ApiClient,
) -> None:
    """What `kubectl get scaledobject/... triggerauthentication/... deployment/... -o yaml` prints: one List,
    the Deployment with everything the apiserver filled in (dnsPolicy, restartPolicy, schedulerName...)."""
    namespace = new_namespace(admin, "convert-list")
    deployment = next(
        d
        for d in yaml.safe_load_all(DEPLOYMENTS.read_text())
        if d["metadata"]["name"] == "rabbitmq-deployment"
    )
    deployment["metadata"]["namespace"] = namespace
    apps = client.AppsV1Api(admin)
    apps.create_namespaced_deployment(namespace, deployment)
    served = admin.sanitize_for_serialization(
        apps.read_namespaced_deployment("rabbitmq-deployment", namespace)
    )
    assert (
        served["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    )  # the apiserver's defaults are in
    keda = [d for d in yaml.safe_load_all(example("rabbitmq-queue--04")) if d["kind"] != "Secret"]
    for document in keda:
        document["metadata"]["namespace"] = namespace
    keda[-1]["metadata"]["labels"] = {"scaledobject.keda.sh/name": "rabbitmq-scaledobject", "team": "orders"}
    listed = {"apiVersion": "v1", "kind": "List", "items": [*keda, served]}
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["convert", "-", *TASK, *CONNECTION])
    assert cli.run(args, io.StringIO(yaml.safe_dump(listed)), out, err) == 0, err.getvalue()
    (resource,) = [d for d in yaml.safe_load_all(out.getvalue()) if d]
    assert resource["metadata"]["labels"] == {"team": "orders"}
    assert resource["spec"]["worker"]["podTemplate"] == {
        "spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}
    }
    assert "terminationGracePeriodSeconds" not in out.getvalue()
    objects = client.CustomObjectsApi(admin)
    objects.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, resource)
    stored: dict[str, Any] = objects.get_namespaced_custom_object(  # type: ignore[assignment]
        api.GROUP, api.VERSION, namespace, api.PLURAL, "rabbitmq-deployment"
    )
    assert stored["spec"] == schema.with_defaults(resource["spec"])
