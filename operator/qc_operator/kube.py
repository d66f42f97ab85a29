"""The only module that calls the Kubernetes API (besides kopf's own watching and event posting).

Blocking `kubernetes` client calls run in threads. Every write is conditional: objects are patched only
when what we want differs from what is there, so a steady state makes no API writes.
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from qc_common import api
from qc_operator.errors import SecretError
from qc_operator.sources.base import SecretKeyRef


@dataclass(frozen=True)
class DeploymentState:
    replicas: int
    ready_replicas: int
    pods: int  # pods the ReplicaSets have now (status.replicas), not counting terminating ones


@dataclass(frozen=True)
class WorkerPod:
    name: str
    metrics_url: str | None  # None until the pod has an IP
    deletion_cost: int | None
    terminating: bool


def make_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """From `kubeconfig`, else $KUBECONFIG, else the pod's in-cluster credentials."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        api_client: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        return api_client
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        # Typed as Any: we pass plain dicts, which the client accepts but its stubs do not describe.
        self.core: Any = client.CoreV1Api(api_client)
        self.apps: Any = client.AppsV1Api(api_client)
        self.policy: Any = client.PolicyV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)

    async def secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        try:
            secret: Any = await asyncio.to_thread(self.core.read_namespaced_secret, ref.name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise SecretError(f"Secret {ref.name!r} not found in namespace {namespace!r}") from error
            raise
        data = secret.data or {}
        if ref.key not in data:
            raise SecretError(f"Secret {ref.name!r} has no key {ref.key!r}")
        try:
            return base64.b64decode(data[ref.key]).decode()
        except UnicodeDecodeError as error:
            raise SecretError(f"Secret {ref.name!r} key {ref.key!r} is not UTF-8 text") from error

    async def secret_values(self, namespace: str, refs: tuple[SecretKeyRef, ...]) -> dict[SecretKeyRef, str]:
        return {ref: await self.secret_value(namespace, ref) for ref in refs}

    # --- owned objects ---
    async def apply_deployment(self, desired: dict[str, Any]) -> bool:
        """Create the worker Deployment, or roll its pod template when it changed. Never touches replicas
        of an existing Deployment (the scaler owns them). Returns True if it wrote."""
        meta = desired["metadata"]
        try:
            current = await asyncio.to_thread(
                self.apps.read_namespaced_deployment, meta["name"], meta["namespace"]
            )
        except ApiException as error:
            if error.status != 404:
                raise
            try:
                await asyncio.to_thread(self.apps.create_namespaced_deployment, meta["namespace"], desired)
            except ApiException as conflict:
                if conflict.status != 409:  # created meanwhile by the other handler: fine
                    raise
                return False
            return True
        annotations = current.spec.template.metadata.annotations or {}
        wanted = desired["spec"]["template"]["metadata"]["annotations"][api.SPEC_HASH_ANNOTATION]
        if annotations.get(api.SPEC_HASH_ANNOTATION) == wanted:
            return False
        patch = {"metadata": {"labels": meta["labels"]}, "spec": {"template": desired["spec"]["template"]}}
        await asyncio.to_thread(self.apps.patch_namespaced_deployment, meta["name"], meta["namespace"], patch)
        return True

    async def ensure_exists(self, desired: dict[str, Any]) -> bool:
        """Create a simple owned object (ServiceAccount, PDB, Service) if it is missing."""
        meta = desired["metadata"]
        create = {
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Service": self.core.create_namespaced_service,
            "PodDisruptionBudget": self.policy.create_namespaced_pod_disruption_budget,
        }[desired["kind"]]
        try:
            await asyncio.to_thread(create, meta["namespace"], desired)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def deployment_state(self, namespace: str, name: str) -> DeploymentState | None:
        try:
            deployment: Any = await asyncio.to_thread(self.apps.read_namespaced_deployment, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return DeploymentState(
            replicas=int(deployment.spec.replicas or 0),
            ready_replicas=int(deployment.status.ready_replicas or 0),
            pods=int(deployment.status.replicas or 0),
        )

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        await asyncio.to_thread(self.apps.patch_namespaced_deployment_scale, name, namespace, body)

    async def worker_pods(self, namespace: str, consumer: str) -> list[WorkerPod]:
        selector = f"{api.CONSUMER_LABEL}={consumer},{api.COMPONENT_LABEL}={api.WORKER_COMPONENT}"
        pods: Any = await asyncio.to_thread(self.core.list_namespaced_pod, namespace, label_selector=selector)
        result = []
        for pod in pods.items:
            annotations = pod.metadata.annotations or {}
            port = annotations.get(api.METRICS_PORT_ANNOTATION, str(api.WORKER_METRICS_PORT))
            ip = pod.status.pod_ip if pod.status else None
            cost = annotations.get(api.POD_DELETION_COST_ANNOTATION)
            result.append(
                WorkerPod(
                    name=pod.metadata.name,
                    metrics_url=f"http://{ip}:{port}{api.WORKER_METRICS_PATH}" if ip else None,
                    deletion_cost=int(cost) if cost is not None and cost.lstrip("-").isdigit() else None,
                    terminating=pod.metadata.deletion_timestamp is not None,
                )
            )
        return result

    async def set_deletion_cost(self, namespace: str, pod: str, cost: int) -> None:
        body = {"metadata": {"annotations": {api.POD_DELETION_COST_ANNOTATION: str(cost)}}}
        try:
            await asyncio.to_thread(self.core.patch_namespaced_pod, pod, namespace, body)
        except ApiException as error:
            if error.status != 404:  # a pod that just went away needs no cost
                raise

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status,
            api.GROUP,
            api.VERSION,
            namespace,
            api.PLURAL,
            name,
            {"status": status},
        )
