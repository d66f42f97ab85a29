"""Operator tests: the real apiserver with the CRD, the real RabbitMQ, and the operator under KopfRunner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from devstack.kube import KubeControlPlane
from devstack.process import free_port
from tests.operator import operator_harness


@pytest.fixture(scope="session")
def admin(kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(kube.admin_kubeconfig)) as api_client:
        operator_harness.install_crd(api_client)
        yield api_client


@pytest.fixture
def run_operator(
    kube: KubeControlPlane, admin: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractContextManager[KopfRunner]]:
    """A context manager running the real operator in a thread (kopf's KopfRunner), as cluster-admin.

    `verbose=True` runs it with --verbose: kopf then logs every patch it sends, which `runner.output` holds.
    """
    monkeypatch.setenv("KUBECONFIG", str(kube.admin_kubeconfig))

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
