"""The chart's ValidatingAdmissionPolicies on the real apiserver.

The operator's ServiceAccount (a real token for it, as its pod gets) is shown what it can no longer do
(change foreign pods, write or scale foreign Deployments, list Secrets) and what it still must (the
deletion cost of worker pods, the children of a QueueConsumer, built and written by the operator's own
code). Every user is shown the QueueConsumer checks: no host access in `spec.worker.podTemplate` unless the
chart allows it, and only Secrets its author may read.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack.kube import KubeControlPlane
from qc_common import api
from qc_operator import builders
from qc_operator import spec as spec_module
from qc_operator.kube import Kube

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart_harness import NAMESPACE, OPERATOR_SERVICE_ACCOUNT, install
from operator_harness import eventually, new_namespace, queue_consumer

POLICY_PREFIX = "qc-queue-consumer-operator-"
POLICIES_SECONDS = 30  # for the apiserver to load policies a helm install just created
WORKER_LABELS = {api.MANAGED_BY_LABEL: api.MANAGED_BY_VALUE, api.COMPONENT_LABEL: api.WORKER_COMPONENT}


def forbidden(call: Callable[[], object]) -> str:
    """Run `call`, which the API server must refuse with 403; the refusal's message."""
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status == 403, raised.value.body
    return str(raised.value.body)


def allowed_by_policies(call: Callable[[], object]) -> bool:
    """False while the API server refuses `call` (a dry run) with 403, True once it accepts it."""
    try:
        call()
    except ApiException as error:
        if error.status != 403:
            raise
        return False
    return True


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "example.com/app:1"}]},
    }


def deployment(name: str, pod_spec: dict[str, Any], owner: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if owner is not None:
        metadata["ownerReferences"] = [builders.owner_reference(owner)]
    return {
        "metadata": metadata,
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


# A Deployment that would own the node: root with SYS_ADMIN, the host's network, the host's / mounted.
# (Not `privileged`: this apiserver runs without --allow-privileged, so it refuses that field itself.)
HOST_POD_SPEC = {
    "hostNetwork": True,
    "containers": [
        {
            "name": "root",
            "image": "example.com/rootkit:1",
            "securityContext": {"runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}},
            "volumeMounts": [{"name": "host", "mountPath": "/host"}],
        }
    ],
    "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
}
PLAIN_POD_SPEC = {"containers": [{"name": "main", "image": "example.com/app:1"}]}


@pytest.fixture(scope="module")
def admin(helm_binary: Path, kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    """Cluster-admin, with the chart installed (default values) and its policies enforced."""
    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as admin_client:
        install(helm_binary, kube, admin_client)
        yield admin_client


@pytest.fixture(scope="module")
def as_operator(kube: KubeControlPlane, admin: client.ApiClient) -> Iterator[client.ApiClient]:
    kubeconfig = kube.service_account_kubeconfig(NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
    with config.new_client_from_config(config_file=str(kubeconfig)) as operator_client:
        yield operator_client


@pytest.fixture(scope="module")
def namespace(admin: client.ApiClient) -> Iterator[str]:
    """A namespace for this module; its QueueConsumers go at the end, so no later operator acts on them."""
    name = new_namespace(admin, "vap")
    core = client.CoreV1Api(admin)

    def default_service_account() -> bool:  # pods need it; the controller-manager makes it
        try:
            return bool(core.read_namespaced_service_account("default", name))
        except ApiException:
            return False

    eventually(default_service_account, 30, "the namespace's default ServiceAccount")
    yield name
    client.CustomObjectsApi(admin).delete_collection_namespaced_custom_object(
        api.GROUP, api.VERSION, name, api.PLURAL
    )
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def consumer(admin: client.ApiClient, namespace: str) -> dict[str, Any]:
    """A QueueConsumer created by the admin, as stored (defaults applied, uid set)."""
    body = queue_consumer("orders", "orders")
    created: dict[str, Any] = client.CustomObjectsApi(admin).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )
    return created


@pytest.fixture(scope="module")
def enforced(admin: client.ApiClient, as_operator: client.ApiClient, namespace: str) -> None:
    """Wait until the API server enforces each of the chart's policies (probed with dry runs)."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    core.create_namespaced_pod(namespace, pod("probe-foreign", {"app": "probe"}))
    apps.create_namespaced_deployment(namespace, deployment("probe-web", PLAIN_POD_SPEC))
    operator_core, operator_apps = client.CoreV1Api(as_operator), client.AppsV1Api(as_operator)
    dry = {"dry_run": "All"}
    host_qc = queue_consumer("probe-host", "q")
    host_qc["spec"]["worker"]["podTemplate"] = {"spec": {"hostNetwork": True}}
    probes: dict[str, Callable[[], object]] = {
        "operator-pod-updates": lambda: operator_core.patch_namespaced_pod(
            "probe-foreign", namespace, {"metadata": {"labels": {"x": "y"}}}, **dry
        ),
        "operator-owned-objects": lambda: operator_apps.create_namespaced_deployment(
            namespace, deployment("probe-unowned", PLAIN_POD_SPEC), **dry
        ),
        "operator-worker-scale": lambda: operator_apps.patch_namespaced_deployment_scale(
            "probe-web", namespace, {"spec": {"replicas": 0}}, **dry
        ),
        "queueconsumer-spec": lambda: client.CustomObjectsApi(admin).create_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, host_qc, **dry
        ),
    }
    for policy, probe in probes.items():
        eventually(lambda probe=probe: not allowed_by_policies(probe), POLICIES_SECONDS, f"{policy} enforced")


def test_policies_type_check_cleanly(admin: client.ApiClient, enforced: None) -> None:
    """The API server type-checks each policy against the kinds it matches: no warnings."""
    registration = client.AdmissionregistrationV1Api(admin)

    def all_checked() -> list[Any] | None:
        policies = [
            p
            for p in registration.list_validating_admission_policy().items
            if p.metadata.name.startswith(POLICY_PREFIX)
        ]
        done = all(p.status and p.status.observed_generation == p.metadata.generation for p in policies)
        return policies if done else None

    policies = eventually(all_checked, 30, "the policies' type checking")
    assert {p.metadata.name.removeprefix(POLICY_PREFIX) for p in policies} == {
        "operator-pod-updates",
        "operator-owned-objects",
        "operator-worker-pod-security",
        "operator-worker-scale",
        "queueconsumer-spec",
    }
    for policy in policies:
        warnings = (policy.status.type_checking and policy.status.type_checking.expression_warnings) or []
        assert warnings == [], (policy.metadata.name, [(w.field_ref, w.warning) for w in warnings])


def test_operator_cannot_change_a_foreign_pod(
    admin: client.ApiClient, as_operator: client.ApiClient, namespace: str, enforced: None
) -> None:
    client.CoreV1Api(admin).create_namespaced_pod(namespace, pod("foreign", {"app": "web"}))
    core = client.CoreV1Api(as_operator)
    image = {"spec": {"containers": [{"name": "main", "image": "example.com/evil:1"}]}}
    assert "is not a worker pod" in forbidden(lambda: core.patch_namespaced_pod("foreign", namespace, image))
    labels = {"metadata": {"labels": {"app": "other"}}}
    assert "is not a worker pod" in forbidden(lambda: core.patch_namespaced_pod("foreign", namespace, labels))
    cost = {"metadata": {"annotations": {api.POD_DELETION_COST_ANNOTATION: "5"}}}
    assert "is not a worker pod" in forbidden(lambda: core.patch_namespaced_pod("foreign", namespace, cost))
    unchanged = client.CoreV1Api(admin).read_namespaced_pod("foreign", namespace)
    assert unchanged.spec.containers[0].image == "example.com/app:1"
    assert unchanged.metadata.labels == {"app": "web"}


def test_operator_changes_only_the_deletion_cost_of_a_worker_pod(
    admin: client.ApiClient, as_operator: client.ApiClient, namespace: str, enforced: None
) -> None:
    client.CoreV1Api(admin).create_namespaced_pod(namespace, pod("worker", WORKER_LABELS))
    core = client.CoreV1Api(as_operator)
    cost = {"metadata": {"annotations": {api.POD_DELETION_COST_ANNOTATION: "-3"}}}
    core.patch_namespaced_pod("worker", namespace, cost)
    image = {"spec": {"containers": [{"name": "main", "image": "example.com/evil:1"}]}}
    only_cost = "may change only the annotation controller.kubernetes.io/pod-deletion-cost"
    assert only_cost in forbidden(lambda: core.patch_namespaced_pod("worker", namespace, image))
    relabel = {"metadata": {"labels": {api.MANAGED_BY_LABEL: "someone-else"}}}
    assert only_cost in forbidden(lambda: core.patch_namespaced_pod("worker", namespace, relabel))
    other = {"metadata": {"annotations": {"example.com/note": "x"}}}
    assert only_cost in forbidden(lambda: core.patch_namespaced_pod("worker", namespace, other))
    message = forbidden(lambda: core.delete_namespaced_pod("worker", namespace))  # RBAC: no delete at all
    assert "cannot delete resource" in message
    stored = client.CoreV1Api(admin).read_namespaced_pod("worker", namespace)
    assert stored.metadata.annotations == {api.POD_DELETION_COST_ANNOTATION: "-3"}
    assert stored.spec.containers[0].image == "example.com/app:1"


def test_operator_cannot_write_deployments_no_queueconsumer_owns(
    admin: client.ApiClient, as_operator: client.ApiClient, namespace: str, consumer: dict[str, Any],
    enforced: None,
) -> None:  # fmt: skip
    apps = client.AppsV1Api(as_operator)
    owner_only = "may only write deployments controlled by a QueueConsumer"
    # The dry run's Deployment: root, hostNetwork and the host's / in kube-system.
    rootkit = deployment("node-owner", HOST_POD_SPEC)
    message = forbidden(lambda: apps.create_namespaced_deployment("kube-system", rootkit))
    # Two policies refuse it; the API server reports one of them.
    assert owner_only in message or "may not use the host's namespaces" in message, message
    assert owner_only in forbidden(
        lambda: apps.create_namespaced_deployment(namespace, deployment("unowned", PLAIN_POD_SPEC))
    )
    # Owned by a QueueConsumer but asking for the host: refused by the pod-security policy.
    owned_rootkit = deployment("orders-worker", HOST_POD_SPEC, owner=consumer)
    message = forbidden(lambda: apps.create_namespaced_deployment(namespace, owned_rootkit))
    assert "the worker Deployment's pod template may not use the host's namespaces" in message
    # A foreign Deployment cannot be taken over by giving it a QueueConsumer owner.
    client.AppsV1Api(admin).create_namespaced_deployment(namespace, deployment("web", PLAIN_POD_SPEC))
    takeover = {"metadata": {"ownerReferences": [builders.owner_reference(consumer)]}}
    assert owner_only in forbidden(lambda: apps.patch_namespaced_deployment("web", namespace, takeover))
    image = {
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "example.com/evil:1"}]}}}
    }
    assert owner_only in forbidden(lambda: apps.patch_namespaced_deployment("web", namespace, image))
    # Nor scaled: the scale subresource is for worker Deployments only.
    scale = {"spec": {"replicas": 3}}
    message = forbidden(lambda: apps.patch_namespaced_deployment_scale("web", namespace, scale))
    assert "may only scale worker Deployments" in message
    assert client.AppsV1Api(admin).read_namespaced_deployment("web", namespace).spec.replicas == 0
    # Nor any other kind it writes.
    core = client.CoreV1Api(as_operator)
    service = {"metadata": {"name": "sneaky"}, "spec": {"ports": [{"port": 80}]}}
    assert "may only write services" in forbidden(lambda: core.create_namespaced_service(namespace, service))


async def test_operator_writes_what_a_queueconsumer_owns(
    admin: client.ApiClient, as_operator: client.ApiClient, namespace: str, consumer: dict[str, Any],
    enforced: None,
) -> None:  # fmt: skip
    """The operator's own code (builders + kube) creates, rolls and scales the children under the policies."""
    kube = Kube(as_operator)
    parsed = spec_module.parse(consumer["spec"])
    await kube.ensure_exists(builders.service_account(consumer))
    await kube.ensure_exists(builders.metrics_service(consumer))
    await kube.ensure_exists(builders.pod_disruption_budget(consumer))
    assert await kube.apply_deployment(builders.deployment(consumer, parsed, 1))
    # A changed pod template rolls the Deployment (patch), and the coming full replace (update) works too.
    changed = {
        **consumer,
        "spec": {**consumer["spec"], "worker": {**consumer["spec"]["worker"], "image": "b:2"}},
    }
    assert await kube.apply_deployment(builders.deployment(changed, spec_module.parse(changed["spec"]), 1))
    apps = client.AppsV1Api(as_operator)

    def replace() -> bool:
        current = apps.read_namespaced_deployment("orders-worker", namespace)
        current.spec.template.metadata.annotations["example.com/replaced"] = "yes"
        try:
            apps.replace_namespaced_deployment("orders-worker", namespace, current)
        except ApiException as error:
            if error.status != 409:  # the Deployment controller wrote its status in between: read again
                raise
            return False
        return True

    eventually(replace, 10, "a replace of the worker Deployment")
    await kube.scale(namespace, "orders-worker", 2)
    stored = client.AppsV1Api(admin).read_namespaced_deployment("orders-worker", namespace)
    assert stored.spec.replicas == 2
    assert stored.spec.template.spec.containers[0].image == "b:2"
    # The ReplicaSet controller makes the worker pods (Pending: no kubelet); the operator sets their cost.
    pods = await asyncio.wait_for(_worker_pods(kube, namespace), 30)
    await kube.set_deletion_cost(namespace, pods[0], 7)
    stored_pod = client.CoreV1Api(admin).read_namespaced_pod(pods[0], namespace)
    assert stored_pod.metadata.annotations[api.POD_DELETION_COST_ANNOTATION] == "7"
    core, policy = client.CoreV1Api(admin), client.PolicyV1Api(admin)
    assert core.read_namespaced_service_account("orders-worker", namespace).metadata.owner_references
    assert core.read_namespaced_service("orders-worker-metrics", namespace).metadata.owner_references
    assert policy.read_namespaced_pod_disruption_budget("orders-worker", namespace).metadata.owner_references


async def _worker_pods(kube: Kube, namespace: str) -> list[str]:
    while True:
        pods = [p.name for p in await kube.worker_pods(namespace, "orders") if not p.terminating]
        if pods:
            return pods
        await asyncio.sleep(0.2)


def test_operator_reads_a_secret_by_name_but_cannot_list_secrets(
    admin: client.ApiClient, as_operator: client.ApiClient, namespace: str, enforced: None
) -> None:
    client.CoreV1Api(admin).create_namespaced_secret(
        namespace, {"metadata": {"name": "rabbitmq"}, "stringData": {"url": "amqp://x"}}
    )
    core = client.CoreV1Api(as_operator)
    assert core.read_namespaced_secret("rabbitmq", namespace).data["url"]
    assert "cannot list resource" in forbidden(lambda: core.list_namespaced_secret(namespace))
    assert "cannot list resource" in forbidden(lambda: core.list_secret_for_all_namespaces())
    assert "cannot watch resource" in forbidden(lambda: core.list_namespaced_secret(namespace, watch=True))


@pytest.mark.parametrize(
    ("pod_template", "message"),
    [
        ({"spec": {"hostNetwork": True}}, "may not use the host's namespaces"),
        ({"spec": {"hostPID": True}}, "may not use the host's namespaces"),
        ({"spec": {"hostIPC": True}}, "may not use the host's namespaces"),
        (
            {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}},
            "may not mount hostPath volumes (root)",
        ),
        (
            {"spec": {"containers": [{"name": "w", "image": "i", "securityContext": {"privileged": True}}]}},
            "may not run privileged containers (w)",
        ),
        (
            {"spec": {"initContainers": [{"name": "init", "image": "i",
                                          "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}},
            "may not add capabilities",
        ),
    ],
)  # fmt: skip
def test_queueconsumer_pod_template_cannot_ask_for_the_host(
    admin: client.ApiClient, namespace: str, enforced: None, pod_template: dict[str, Any], message: str
) -> None:
    body = queue_consumer(f"host-{uuid.uuid4().hex[:6]}", "q")
    body["spec"]["worker"]["podTemplate"] = pod_template
    custom = client.CustomObjectsApi(admin)
    refusal = forbidden(
        lambda: custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
    )
    assert f"spec.worker.podTemplate {message}" in refusal
    assert "admissionPolicies.podSecurity.allowPrivileged=true" in refusal


def test_queueconsumer_pod_template_checks_only_what_an_update_changes(
    admin: client.ApiClient, namespace: str, enforced: None
) -> None:
    custom = client.CustomObjectsApi(admin)
    body = queue_consumer("tuned", "q")
    body["spec"]["worker"]["podTemplate"] = {"spec": {"nodeSelector": {"pool": "queues"}}}
    custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
    host = {"spec": {"worker": {"podTemplate": {"spec": {"hostNetwork": True}}}}}
    refusal = forbidden(
        lambda: custom.patch_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, "tuned", host
        )
    )
    assert "may not use the host's namespaces" in refusal
    # Annotations (kopf's progress storage) and the rest of the spec still change freely.
    note = {
        "metadata": {"annotations": {"queueconsumer.io/note": "x"}},
        "spec": {"worker": {"concurrency": 2}},
    }
    custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "tuned", note)


def test_queueconsumer_names_only_secrets_its_author_may_read(
    admin: client.ApiClient, namespace: str, enforced: None
) -> None:
    user = f"dev-{uuid.uuid4().hex[:6]}"
    rbac = client.RbacAuthorizationV1Api(admin)
    create_qcs = {"apiGroups": [api.GROUP], "resources": [api.PLURAL], "verbs": ["create"]}
    role = {"metadata": {"name": user}, "rules": [create_qcs]}
    rbac.create_namespaced_role(namespace, role)
    binding = {
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    rbac.create_namespaced_role_binding(namespace, binding)
    with client.ApiClient(admin.configuration) as as_user:  # the admin's credentials, acting as `user`
        as_user.set_default_header("Impersonate-User", user)
        _names_only_readable_secrets(client.CustomObjectsApi(as_user), rbac, namespace, user, binding)


def _names_only_readable_secrets(
    custom: client.CustomObjectsApi, rbac: client.RbacAuthorizationV1Api, namespace: str, user: str,
    binding: dict[str, Any],
) -> None:  # fmt: skip
    body = queue_consumer("borrowed", "q")  # names the Secret "rabbitmq"
    refusal = forbidden(
        lambda: custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
    )
    assert f"{user} may not get all the Secrets it names (rabbitmq, rabbitmq) in {namespace}" in refusal
    reader = {"metadata": {"name": f"{user}-secret"},
              "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rabbitmq"],
                         "verbs": ["get"]}]}  # fmt: skip
    rbac.create_namespaced_role(namespace, reader)
    binding["metadata"] = {"name": f"{user}-secret"}
    binding["roleRef"] = {**binding["roleRef"], "name": f"{user}-secret"}  # type: ignore[dict-item]
    rbac.create_namespaced_role_binding(namespace, binding)
    created = eventually(
        lambda: allowed_by_policies(
            lambda: custom.create_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, body
            )
        ),
        10,
        "the RBAC grant to be seen",
    )
    assert created


def test_allow_privileged_value_lets_host_access_through(
    helm_binary: Path, kube: KubeControlPlane, admin: client.ApiClient, as_operator: client.ApiClient,
    namespace: str, consumer: dict[str, Any], enforced: None,
) -> None:  # fmt: skip
    custom = client.CustomObjectsApi(admin)
    body = queue_consumer("host-allowed", "q")
    body["spec"]["worker"]["podTemplate"] = {"spec": {**HOST_POD_SPEC}}

    def create(dry_run: bool) -> object:
        extra = {"dry_run": "All"} if dry_run else {}
        return custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, body, **extra
        )

    assert "spec.worker.podTemplate" in forbidden(lambda: create(dry_run=False))
    install(helm_binary, kube, admin, "--set", "admissionPolicies.podSecurity.allowPrivileged=true")
    try:
        eventually(lambda: allowed_by_policies(lambda: create(dry_run=True)), POLICIES_SECONDS, "the value")
        create(dry_run=False)
        # The operator may now write such a worker Deployment; it is still fenced by owner.
        apps = client.AppsV1Api(as_operator)
        owned = deployment("host-allowed-worker", HOST_POD_SPEC, owner=consumer)
        eventually(
            lambda: allowed_by_policies(
                lambda: apps.create_namespaced_deployment(namespace, owned, dry_run="All")
            ),
            POLICIES_SECONDS,
            "the operator's pod-security policy to go",
        )
        assert "controlled by a QueueConsumer" in forbidden(
            lambda: apps.create_namespaced_deployment("kube-system", deployment("x", HOST_POD_SPEC))
        )
    finally:
        install(helm_binary, kube, admin)
        custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "host-allowed")
    body["metadata"]["name"] = "host-again"
    eventually(lambda: not allowed_by_policies(lambda: create(dry_run=True)), POLICIES_SECONDS, "the default")
