"""Operator tests: the real apiserver with the CRD, the real RabbitMQ, and the operator under KopfRunner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from devstack.kube import KubeControlPlane
from devstack.process import free_port
from tests.chart import chart_harness
from tests.operator import operator_harness


@pytest.fixture(scope="session")
def admin(kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as api_client:
        operator_harness.install_crd(api_client)
        yield api_client


@pytest.fixture(scope="session")
def chart_service_account_kubeconfig(
    helm_binary: Path, kube: KubeControlPlane, admin: client.ApiClient
) -> Path:
    """The chart installed with its defaults (its RBAC and admission policies), and a kubeconfig for the
    operator's ServiceAccount: the operator then has exactly the permissions users give it."""
    chart_harness.install(helm_binary, kube, admin)
    return kube.service_account_kubeconfig(chart_harness.NAMESPACE, chart_harness.OPERATOR_SERVICE_ACCOUNT)


@pytest.fixture(autouse=True)
def own_namespaces_removed(request: pytest.FixtureRequest) -> Iterator[None]:
    """The namespaces a test made go at its end, QueueConsumers and children with them.

    Every operator here runs cluster-wide: what a test leaves behind, each later operator of the session
    would list, resume, and tick every interval (a thousand after the shard split test).
    """
    made_before = len(operator_harness.CREATED_NAMESPACES)
    yield
    made = operator_harness.CREATED_NAMESPACES[made_before:]
    del operator_harness.CREATED_NAMESPACES[made_before:]
    if made:
        admin_client = request.getfixturevalue("admin")
        for namespace in made:
            operator_harness.remove_namespace(admin_client, namespace)


@pytest.fixture
def run_operator(
    kube: KubeControlPlane, admin: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractContextManager[KopfRunner]]:
    """A context manager running the real operator in a thread (kopf's KopfRunner), as cluster-admin.

    `verbose=True` runs it with --verbose: kopf then logs every patch it sends, which `runner.output` holds.
    """
    return operator_runner(kube.admin_kubeconfig, monkeypatch)


@pytest.fixture
def run_operator_as_chart(
    chart_service_account_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractContextManager[KopfRunner]]:
    """As `run_operator`, as the chart's ServiceAccount under the chart's RBAC and admission policies."""
    return operator_runner(chart_service_account_kubeconfig, monkeypatch)


def operator_runner(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractContextManager[KopfRunner]]:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    def start(verbose: bool = False) -> KopfRunner:
        monkeypatch.setenv("QC_METRICS_PORT", str(free_port()))
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        args = [
            "run",
            "--all-namespaces",
            "--standalone",
            "--liveness",
            liveness,
            "-m",
            "qc_operator.handlers",
            *(["--verbose"] if verbose else []),
        ]
        return KopfRunner(args, timeout=60)

    return start
