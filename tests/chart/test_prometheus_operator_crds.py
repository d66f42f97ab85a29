"""The chart's ServiceMonitor, PodMonitor and PrometheusRule meet the Prometheus Operator's own CRDs (the
pinned module's, tools/prometheus-operator/go.mod) on the real apiserver: `helm install` with monitors,
pod monitors, rules and dashboards enabled is accepted, and the same schema does reject a broken monitor
or rule, so the acceptance means something."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from devstack import dashboards, prometheus_operator
from devstack.kube import KubeControlPlane
from tests.chart.chart_harness import NAMESPACE, install
from tests.chart.test_chart_renders_and_validates import CHART, VALUE_SETS

GROUP, VERSION = "monitoring.coreos.com", "v1"
FULLNAME = "qc-queue-consumer-operator"


@pytest.fixture(scope="module")
def monitored(helm_binary: Path, kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    """Cluster-admin, with the Prometheus Operator's CRDs and the chart installed with its monitoring on."""
    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as admin:
        installed = prometheus_operator.install(admin)
        assert sorted(installed) == [
            f"{plural}.{GROUP}" for plural in sorted(prometheus_operator.CHART_KINDS)
        ]
        install(helm_binary, kube, admin, *VALUE_SETS["monitoring"])
        yield admin


def stored(admin: client.ApiClient, plural: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.CustomObjectsApi(admin).get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, plural, name
    )
    return body


def test_helm_install_with_monitoring_is_accepted_by_the_crds(monitored: client.ApiClient) -> None:
    service_monitor = stored(monitored, "servicemonitors", FULLNAME)
    assert service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    pod_monitor = stored(monitored, "podmonitors", f"{FULLNAME}-workers")
    relabelled = {r["targetLabel"] for r in pod_monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]}
    assert relabelled == {"consumer", "namespace"}
    rule = stored(monitored, "prometheusrules", FULLNAME)
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert [g["name"] for g in rule["spec"]["groups"]] == [g["name"] for g in alerts["groups"]]
    assert sum(len(g["rules"]) for g in rule["spec"]["groups"]) == sum(
        len(g["rules"]) for g in alerts["groups"]
    )
    core = client.CoreV1Api(monitored)
    for name, text in dashboards.render().items():
        config_map = core.read_namespaced_config_map(f"{FULLNAME}-{name.removesuffix('.json')}", NAMESPACE)
        assert json.loads(config_map.data[name]) == json.loads(text)


def rejection(admin: client.ApiClient, plural: str, body: dict[str, Any]) -> str:
    """The apiserver's message when it refuses `body` (a dry run: nothing is stored)."""
    with pytest.raises(client.ApiException) as refused:
        client.CustomObjectsApi(admin).create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, plural, body, dry_run="All"
        )
    assert refused.value.status == 422, refused.value.body
    return str(refused.value.body)


def copy_of(document: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(document)
    body["metadata"] = {"name": "broken", "namespace": NAMESPACE}
    return body


def test_the_same_crds_reject_a_broken_monitor_and_rule(monitored: client.ApiClient) -> None:
    monitor = copy_of(stored(monitored, "servicemonitors", FULLNAME))
    monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    assert "spec.endpoints[0].interval" in rejection(monitored, "servicemonitors", monitor)

    pod_monitor = copy_of(stored(monitored, "podmonitors", f"{FULLNAME}-workers"))
    pod_monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    assert "relabelings[0].action" in rejection(monitored, "podmonitors", pod_monitor)

    rule = copy_of(stored(monitored, "prometheusrules", FULLNAME))
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    assert "expr" in rejection(monitored, "prometheusrules", rule)
