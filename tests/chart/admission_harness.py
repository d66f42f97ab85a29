"""Helpers for the admission-policy tests: refusals, probes, and the pods and Deployments they try."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from qc_common import api
from qc_operator import builders

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
