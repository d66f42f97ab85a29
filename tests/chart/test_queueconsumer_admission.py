"""The chart's QueueConsumer policy on the real apiserver, met by every user who writes a QueueConsumer.

`spec.worker.podTemplate` may not ask for the host (privileged, host namespaces, hostPath, added
capabilities) unless the chart allows it, and a QueueConsumer may only name Secrets its author may read.
Fixtures: tests/chart/conftest.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from qc_common import api
from tests.chart.admission_harness import (
    HOST_POD_SPEC,
    POLICIES_SECONDS,
    allowed_by_policies,
    deployment,
    forbidden,
)
from tests.chart.chart_harness import install
from tests.operator.operator_harness import queue_consumer


@pytest.mark.parametrize(
    ("pod_template", "message"),
    [
        ({"spec": {"hostNetwork": True}}, "may not use the host's namespaces"),
        ({"spec": {"hostPID": True}}, "may not use the host's namespaces"),
        ({"spec": {"hostIPC": True}}, "may not use the host's namespaces"),
    ],
)
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


@pytest.mark.parametrize(
    "pod_template",
    [
        {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}},
        {"spec": {"containers": [{"name": "w", "image": "i", "securityContext": {"privileged": True}}]}},
        {"spec": {"initContainers": [{"name": "i", "image": "i", "securityContext": {"privileged": True}}]}},
    ],
)
def test_a_pod_template_with_containers_or_volumes_is_refused_by_the_schema_first(
    admin: client.ApiClient, namespace: str, enforced: None, pod_template: dict[str, Any]
) -> None:
    """The CRD refuses what would replace the worker container or its volumes before any policy runs (the
    policy's container and volume checks stay as a second fence)."""
    body = queue_consumer(f"host-{uuid.uuid4().hex[:6]}", "q")
    body["spec"]["worker"]["podTemplate"] = pod_template
    custom = client.CustomObjectsApi(admin)
    with pytest.raises(client.ApiException) as refused:
        custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
    assert refused.value.status == 422
    assert "may not set containers, initContainers or volumes" in str(refused.value.body)


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
    custom: client.CustomObjectsApi,
    rbac: client.RbacAuthorizationV1Api,
    namespace: str,
    user: str,
    binding: dict[str, Any],
) -> None:
    body = queue_consumer("borrowed", "q")  # names the Secret "rabbitmq"
    refusal = forbidden(
        lambda: custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
    )
    assert f"{user} may not get all the Secrets it names (rabbitmq, rabbitmq) in {namespace}" in refusal
    reader = {
        "metadata": {"name": f"{user}-secret"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["rabbitmq"], "verbs": ["get"]}
        ],
    }
    rbac.create_namespaced_role(namespace, reader)
    binding["metadata"] = {"name": f"{user}-secret"}
    binding["roleRef"] = {**binding["roleRef"], "name": f"{user}-secret"}  # type: ignore[dict-item]
    rbac.create_namespaced_role_binding(namespace, binding)
    created = wait_until(
        lambda: allowed_by_policies(
            lambda: custom.create_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, body
            )
        ),
        10,
        "the RBAC grant to be seen",
    )
    assert created
    # The TLS Secrets are mounted into the worker pods: naming them needs `get` on them too.
    tls_body = queue_consumer("borrowed-ca", "q")
    tls = {"caSecretRef": {"name": "their-ca"}, "clientCertSecretRef": {"name": "their-client"}}
    tls_body["spec"]["source"]["rabbitmq"]["tls"] = tls
    refusal = forbidden(
        lambda: custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, tls_body
        )
    )
    assert "(rabbitmq, rabbitmq, their-ca, their-client)" in refusal


def test_allow_privileged_value_lets_host_access_through(
    helm_binary: Path,
    kube: KubeControlPlane,
    admin: client.ApiClient,
    as_operator: client.ApiClient,
    namespace: str,
    consumer: dict[str, Any],
    enforced: None,
) -> None:
    custom = client.CustomObjectsApi(admin)
    body = queue_consumer("host-allowed", "q")
    body["spec"]["worker"]["podTemplate"] = {"spec": {"hostNetwork": True, "hostPID": True}}

    def create(dry_run: bool) -> object:
        extra = {"dry_run": "All"} if dry_run else {}
        return custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, body, **extra
        )

    assert "spec.worker.podTemplate" in forbidden(lambda: create(dry_run=False))
    install(helm_binary, kube, admin, "--set", "admissionPolicies.podSecurity.allowPrivileged=true")
    try:
        wait_until(lambda: allowed_by_policies(lambda: create(dry_run=True)), POLICIES_SECONDS, "the value")
        create(dry_run=False)
        # The operator may now write such a worker Deployment; it is still fenced by owner.
        apps = client.AppsV1Api(as_operator)
        owned = deployment("host-allowed-worker", HOST_POD_SPEC, owner=consumer)
        wait_until(
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
    wait_until(lambda: not allowed_by_policies(lambda: create(dry_run=True)), POLICIES_SECONDS, "the default")
