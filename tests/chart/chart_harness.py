"""Helpers for the chart tests that talk to the real apiserver: helm against it, the release's coordinates."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kubernetes import client

from devstack import manifests
from devstack.kube import KubeControlPlane
from qc_common import api

RELEASE, NAMESPACE = "qc", "qc-system"
# The operator's ServiceAccount as the chart names it for RELEASE, and the username the API server gives it.
OPERATOR_SERVICE_ACCOUNT = "qc-queue-consumer-operator"
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"


def helm(helm_binary: Path, kube: KubeControlPlane, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kube.admin_kubeconfig), "HELM_CACHE_HOME": "/tmp/helm-cache"}
    result = subprocess.run([str(helm_binary), *args], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def adopt_existing_crd(admin: client.ApiClient) -> None:
    """Mark a CRD created without helm (by `kubectl apply`, or by another suite on this shared apiserver)
    as the release's, as the README tells users who switch to helm; helm refuses to install over it else."""
    marks = {
        "metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": RELEASE,
                "meta.helm.sh/release-namespace": NAMESPACE,
            },
        }
    }
    try:
        client.ApiextensionsV1Api(admin).patch_custom_resource_definition(api.CRD_NAME, marks)
    except client.ApiException as error:
        if error.status != 404:
            raise


def install(helm_binary: Path, kube: KubeControlPlane, admin: client.ApiClient, *values: str) -> None:
    """`helm upgrade --install` the chart as RELEASE with only `values` (--set ...) over the defaults
    (--reset-values: without values helm would reuse the previous release's)."""
    adopt_existing_crd(admin)
    helm(
        helm_binary,
        kube,
        "upgrade",
        "--install",
        RELEASE,
        str(manifests.CHART),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--reset-values",
        *values,
    )
