"""The chart's ValidatingAdmissionPolicies on the real apiserver: the operator's fences.

The operator's ServiceAccount (a real token for it, as its pod gets) is shown what it can no longer do
(change foreign pods, write or scale foreign Deployments, list Secrets) and what it still must (the
deletion cost of worker pods, the children of a QueueConsumer, built and written by the operator's own
code). Fixtures: tests/chart/conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack.polling import wait_until
from qc_common import api
from qc_operator import builders
from qc_operator import spec as spec_module
from qc_operator.kube import Kube
from qc_operator.reconcile import ensure_deployment
from tests.chart.admission_harness import (
    HOST_POD_SPEC,
    PLAIN_POD_SPEC,
    POLICY_PREFIX,
    WORKER_LABELS,
    deployment,
    forbidden,
    pod,
)


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

    policies = wait_until(all_checked, 30, "the policies' type checking")
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
    admin: client.ApiClient,
    as_operator: client.ApiClient,
    namespace: str,
    consumer: dict[str, Any],
    enforced: None,
) -> None:
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
    # The operator replaces (update) a Deployment's template; it has no patch on Deployments at all.

    def replaced(change: Callable[[Any], None]) -> Callable[[], Any]:
        def replace() -> Any:
            for _ in range(20):  # the Deployment controller may write its status in between: read again
                web = client.AppsV1Api(admin).read_namespaced_deployment("web", namespace)
                change(web)
                try:
                    return apps.replace_namespaced_deployment("web", namespace, web)
                except ApiException as error:
                    if error.status != 409:
                        raise
            raise AssertionError("the Deployment kept changing")

        return replace

    def take_over(web: Any) -> None:
        web.metadata.owner_references = [builders.owner_reference(consumer)]

    def new_image(web: Any) -> None:
        web.spec.template.spec.containers[0].image = "example.com/evil:1"

    assert owner_only in forbidden(replaced(take_over))
    assert owner_only in forbidden(replaced(new_image))
    takeover = {"metadata": {"ownerReferences": [builders.owner_reference(consumer)]}}
    assert "cannot patch resource" in forbidden(
        lambda: apps.patch_namespaced_deployment("web", namespace, takeover)
    )
    # Nor scaled: the scale subresource is for worker Deployments only.
    scale = {"spec": {"replicas": 3}}
    message = forbidden(lambda: apps.patch_namespaced_deployment_scale("web", namespace, scale))
    assert "may only scale worker Deployments" in message
    assert client.AppsV1Api(admin).read_namespaced_deployment("web", namespace).spec.replicas == 0
    # Nor any other kind it writes.
    core = client.CoreV1Api(as_operator)
    service = {"metadata": {"name": "sneaky"}, "spec": {"ports": [{"port": 80}]}}
    assert "may only write services" in forbidden(lambda: core.create_namespaced_service(namespace, service))


def test_scale_fence_knows_a_worker_deployment_by_name_and_selector_only(
    admin: client.ApiClient, as_operator: client.ApiClient, namespace: str, enforced: None
) -> None:
    """The Scale object carries no owner: the fence is the name `<consumer>-worker` plus that consumer's
    worker selector. This test pins the documented gap: a look-alike made by someone who may create
    Deployments passes (only its replica count can change, and its pods are labelled as workers)."""
    apps, operator_apps = client.AppsV1Api(admin), client.AppsV1Api(as_operator)
    scale = {"spec": {"replicas": 1}}
    apps.create_namespaced_deployment(namespace, deployment("payments-worker", PLAIN_POD_SPEC))
    message = forbidden(
        lambda: operator_apps.patch_namespaced_deployment_scale("payments-worker", namespace, scale)
    )
    assert "may only scale worker Deployments" in message  # the name alone is not enough
    worker_selector = builders.selector("lookalike")
    look_alike = deployment("lookalike-worker", PLAIN_POD_SPEC)
    look_alike["spec"]["selector"] = {"matchLabels": worker_selector}
    look_alike["spec"]["template"]["metadata"]["labels"] = worker_selector
    apps.create_namespaced_deployment(namespace, look_alike)
    operator_apps.patch_namespaced_deployment_scale("lookalike-worker", namespace, scale)
    assert apps.read_namespaced_deployment("lookalike-worker", namespace).spec.replicas == 1


async def test_operator_writes_what_a_queueconsumer_owns(
    admin: client.ApiClient,
    as_operator: client.ApiClient,
    namespace: str,
    consumer: dict[str, Any],
    enforced: None,
) -> None:
    """The operator's own code (builders + kube) creates, rolls and scales the children under the policies."""
    kube = Kube(as_operator)
    parsed = spec_module.parse(consumer["spec"])
    uid = consumer["metadata"]["uid"]
    await kube.ensure_exists(builders.service_account(consumer), uid)
    await kube.ensure_exists(builders.metrics_service(consumer), uid)
    await kube.ensure_exists(builders.pod_disruption_budget(consumer), uid)
    assert await kube.ensure_exists(builders.metrics_service(consumer), uid) is False, "there, and ours"
    # The operator's own path: create, then a changed spec replaces the pod template (update).
    first = await ensure_deployment(kube, consumer, parsed)
    assert first.controller_uid == uid
    changed = {
        **consumer,
        "spec": {**consumer["spec"], "worker": {**consumer["spec"]["worker"], "image": "b:2"}},
    }
    await ensure_deployment(kube, changed, spec_module.parse(changed["spec"]))
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
