"""helm install and upgrade into the real apiserver; the operator running with only the chart's RBAC."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from devstack import manifests
from devstack.kube import KubeControlPlane
from devstack.polling import wait_until
from devstack.process import free_port
from devstack.services import RabbitMQ
from qc_common import api
from tests.chart.chart_harness import NAMESPACE, RELEASE, helm, install
from tests.operator.operator_harness import queue_consumer

EXAMPLES = manifests.OUTPUT.parent / "examples"


@pytest.fixture(scope="module")
def installed(helm_binary: Path, kube: KubeControlPlane) -> client.ApiClient:
    admin = config.new_client_from_config(config_file=str(kube.admin_kubeconfig))
    install(helm_binary, kube, admin, "--set", "operator.verbose=true")
    return admin


def test_install_then_upgrade(helm_binary: Path, kube: KubeControlPlane, installed: client.ApiClient) -> None:
    apps, rbac = client.AppsV1Api(installed), client.RbacAuthorizationV1Api(installed)
    deployment = apps.read_namespaced_deployment("qc-queue-consumer-operator", NAMESPACE)
    assert "--verbose" in deployment.spec.template.spec.containers[0].args
    assert client.ApiextensionsV1Api(installed).read_custom_resource_definition(
        api.CRD_NAME
    ).spec.names.short_names == ["qc"]
    assert rbac.read_cluster_role("qc-queue-consumer-operator").rules

    release = [RELEASE, str(manifests.CHART), "-n", NAMESPACE]
    changes = ["--set", "operator.verbose=false", "--set", "prometheusRule.enabled=false"]
    helm(helm_binary, kube, "upgrade", *release, "--reuse-values", *changes)
    deployment = apps.read_namespaced_deployment("qc-queue-consumer-operator", NAMESPACE)
    assert "--verbose" not in deployment.spec.template.spec.containers[0].args
    history = helm(helm_binary, kube, "history", RELEASE, "-n", NAMESPACE, "-o", "yaml")
    assert [entry["revision"] for entry in yaml.safe_load(history)][-1] >= 2


def test_example_queueconsumers_are_accepted_by_the_apiserver(installed: client.ApiClient) -> None:
    namespace = f"examples-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(installed).create_namespace({"metadata": {"name": namespace}})
    custom = client.CustomObjectsApi(installed)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        created = custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)
        # The server applied the CRD's defaults.
        assert created["spec"]["worker"]["maxDeliveryAttempts"] >= 1, path.name
        assert created["spec"]["scaling"]["tolerance"] == 0.2, path.name


def test_operator_works_with_only_the_charts_permissions(
    kube: KubeControlPlane, installed: client.ApiClient, rabbitmq: RabbitMQ, tmp_path: Path
) -> None:
    """Run the real operator process as the chart's ServiceAccount: it reconciles and scales, nothing more."""
    kubeconfig = kube.service_account_kubeconfig(NAMESPACE, "qc-queue-consumer-operator")
    namespace = f"rbac-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(installed)
    core.create_namespace({"metadata": {"name": namespace}})
    management = f"http://guest:guest@127.0.0.1:{rabbitmq.management_port}"
    data = {"url": rabbitmq.amqp_url, "managementUrl": management}
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "rabbitmq"}, "data": encoded})
    queue = f"rbac-{uuid.uuid4().hex[:6]}"
    rabbitmq.api("PUT", f"/api/queues/%2F/{queue}", {"durable": True})
    body = queue_consumer("rbac-check", queue, minReplicas=1)
    client.CustomObjectsApi(installed).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "QC_METRICS_PORT": str(free_port())}
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("qc-operator")),
                "run",
                "--all-namespaces",
                "--liveness",
                f"http://127.0.0.1:{free_port()}/healthz",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        apps = client.AppsV1Api(installed)

        def deployment_ready() -> bool:
            try:
                return apps.read_namespaced_deployment("rbac-check-worker", namespace).spec.replicas == 1
            except client.ApiException:
                return False

        wait_until(
            deployment_ready, 60, "the operator (as its ServiceAccount) to create the worker Deployment"
        )

        def status_written() -> bool:
            qc = client.CustomObjectsApi(installed).get_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL, "rbac-check"
            )
            return (qc.get("status") or {}).get("backlog") == 0

        wait_until(status_written, 60, "the operator to read the backlog and write the status")
        log = log_path.read_text()
        assert "Forbidden" not in log, log[-3000:]
        # A 403 status, not the milliseconds of a log line's time (",403]").
        assert not re.search(r"(?<![\d,])403(?!\d)", log), log[-3000:]
    finally:
        process.terminate()
        process.wait(timeout=30)

    # And the chart's grant is no wider than that: a few things the operator must not be able to do.
    with config.new_client_from_config(config_file=str(kubeconfig)) as as_operator:
        authorization = client.AuthorizationV1Api(as_operator)
        forbidden = [
            ("delete", "apps", "deployments"),
            ("delete", "", "pods"),
            ("create", "", "secrets"),
            ("update", "", "secrets"),
            ("list", "", "secrets"),
            ("watch", "", "secrets"),
            ("delete", "", "services"),
            ("update", "", "pods"),
            ("create", "", "pods"),
            ("create", "rbac.authorization.k8s.io", "roles"),
            ("delete", "apiextensions.k8s.io", "customresourcedefinitions"),
        ]
        for verb, group, resource in forbidden:
            attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
            review = authorization.create_self_subject_access_review(
                {"spec": {"resourceAttributes": attributes}}
            )
            assert review.status.allowed is False, f"the operator may {verb} {resource}"
