"""Fixtures of the chart tests that need the chart installed with its admission policies enforced.

Module-scoped: each test module gets its own install (default values), namespace and QueueConsumer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from qc_common import api
from tests.chart.admission_harness import (
    PLAIN_POD_SPEC,
    POLICIES_SECONDS,
    allowed_by_policies,
    deployment,
    pod,
)
from tests.chart.chart_harness import NAMESPACE, OPERATOR_SERVICE_ACCOUNT, install
from tests.operator.operator_harness import new_namespace, queue_consumer


@pytest.fixture(scope="module")
def admin(helm_binary: Path, kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    """Cluster-admin, with the chart installed (default values)."""
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

    wait_until(default_service_account, 30, "the namespace's default ServiceAccount")
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
        wait_until(lambda probe=probe: not allowed_by_policies(probe), POLICIES_SECONDS, f"{policy} enforced")
