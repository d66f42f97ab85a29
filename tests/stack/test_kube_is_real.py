"""The local control plane is real: the apiserver validates schemas, the GC collects orphans."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack.kube import KubeControlPlane
from devstack.polling import wait_until

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.test"},
    "spec": {
        "group": "smoke.test",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def api(kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as api_client:
        yield api_client


def test_apiserver_rejects_a_resource_that_violates_its_crd_schema(api: client.ApiClient) -> None:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    custom = client.CustomObjectsApi(api)

    def crd_established() -> bool:
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("widgets.smoke.test")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_until(crd_established, 30, "the CRD to be established")
    good = {"apiVersion": "smoke.test/v1", "kind": "Widget", "metadata": {"name": "ok"}, "spec": {"size": 3}}
    custom.create_namespaced_custom_object("smoke.test", "v1", "default", "widgets", good)

    bad = {"apiVersion": "smoke.test/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": 99}}
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object("smoke.test", "v1", "default", "widgets", bad)
    assert caught.value.status == 422
    assert "spec.size: Invalid value: 99: spec.size in body should be less than or equal to 10" in str(
        caught.value.body
    )


def test_controller_manager_garbage_collects_a_child_whose_owner_is_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = f"owner-{uuid.uuid4().hex[:8]}"
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": name}, "data": {"a": "1"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": f"{name}-child", "ownerReferences": [reference]}, "data": {}}
    )
    core.delete_namespaced_config_map(name, "default")

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map(f"{name}-child", "default")
        except ApiException as error:
            return error.status == 404
        return False

    wait_until(child_gone, 60, "the garbage collector to delete the child")


def test_deployment_controller_creates_pods(api: client.ApiClient) -> None:
    name = f"deploy-{uuid.uuid4().hex[:8]}"
    labels = {"app": name}
    deployment = {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment("default", deployment)
    core = client.CoreV1Api(api)
    wait_until(
        lambda: len(core.list_namespaced_pod("default", label_selector=f"app={name}").items) == 2,
        60,
        "the Deployment and ReplicaSet controllers to create 2 pods",
    )
