"""The only module that calls the Kubernetes API (besides kopf's own watching and event posting).

Blocking `kubernetes` client calls run in threads. Every write is conditional: objects are patched only
when what we want differs from what is there, so a steady state makes no API writes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from qc_common import api
from qc_operator import secrets
from qc_operator.errors import ApiRejected, OwnershipConflict
from qc_operator.sources.base import SecretKeyRef


def _version() -> str:
    try:
        return importlib.metadata.version("queue-consumer-operator")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


USER_AGENT = f"qc-operator/{_version()}"  # how the apiserver's audit log names this client's calls


@dataclass(frozen=True)
class DeploymentState:
    replicas: int
    ready_replicas: int
    pods: int  # pods the ReplicaSets have now (status.replicas), not counting terminating ones
    controller_uid: str | None  # the uid of the object controlling it (ours: the QueueConsumer's)
    spec_hash: str | None  # the pod template's hash annotation, as builders.pod_template wrote it
    # The object as read (a client model), turned into a body only to replace; None as watched: the
    # replace reads it then (once per spec change), so the index does not hold every whole Deployment.
    model: Any = field(repr=False, compare=False, default=None)

    @staticmethod
    def from_body(body: Mapping[str, Any]) -> DeploymentState:
        """From a Deployment as plain data (a watch event's object): the few fields a tick reads, without
        the object itself (kept in kopf's index for every QueueConsumer, it was most of the operator's
        memory)."""
        spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
        template_meta = (spec.get("template") or {}).get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        return DeploymentState(
            replicas=int(spec.get("replicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0),
            pods=int(status.get("replicas") or 0),
            controller_uid=next((str(o.get("uid")) for o in owners if o.get("controller")), None),
            spec_hash=(template_meta.get("annotations") or {}).get(api.SPEC_HASH_ANNOTATION),
        )


@dataclass(frozen=True)
class WorkerPod:
    name: str
    metrics_url: str | None  # None until the pod has an IP
    deletion_cost: int | None
    terminating: bool


def make_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """From `kubeconfig`, else $KUBECONFIG, else the pod's in-cluster credentials; it names itself
    `USER_AGENT` to the apiserver (its audit log), beside kopf's own `kopf/<version>`."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        api_client: client.ApiClient = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    else:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        api_client = client.ApiClient(configuration)
    api_client.user_agent = USER_AGENT
    return api_client


def deployment_state(deployment: Any) -> DeploymentState:
    """From a Deployment as the client returns it (a model)."""
    annotations = deployment.spec.template.metadata.annotations or {}
    status = deployment.status
    return DeploymentState(
        replicas=int(deployment.spec.replicas or 0),
        ready_replicas=int(status.ready_replicas or 0) if status else 0,
        pods=int(status.replicas or 0) if status else 0,
        controller_uid=controller_uid(deployment.metadata.owner_references),
        spec_hash=annotations.get(api.SPEC_HASH_ANNOTATION),
        model=deployment,
    )


REPLACE_ATTEMPTS = 3  # a Deployment read again after a conflict, before leaving it to the next tick


def controller_uid(owner_references: Any) -> str | None:
    for ref in owner_references or []:
        if getattr(ref, "controller", False):
            return str(ref.uid)
    return None


def check_owner(kind: str, name: str, found_uid: str | None, owner_uid: str) -> None:
    if found_uid != owner_uid:
        raise OwnershipConflict(
            f"a {kind} named {name!r} already exists and is not controlled by this QueueConsumer: "
            "rename one of them, or delete that object if nothing else uses it"
        )


def api_message(error: ApiException) -> str:
    """The API server's own message from an error's Status body."""
    try:
        status = json.loads(error.body or "")
    except ValueError:
        status = None
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or error.reason or f"HTTP {error.status}")[:1000]


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        # Typed as Any: we pass plain dicts, which the client accepts but its stubs do not describe.
        self.core: Any = client.CoreV1Api(api_client)
        self.apps: Any = client.AppsV1Api(api_client)
        self.policy: Any = client.PolicyV1Api(api_client)
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.secrets = secrets.SecretCache(self._read_secret)  # one per process: shared by every consumer

    async def _read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Secret's data (key -> base64), None if it does not exist; only `self.secrets` calls it."""
        try:
            secret: Any = await asyncio.to_thread(self.core.read_namespaced_secret, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(secret.data or {})

    async def secret_values(
        self,
        namespace: str,
        refs: tuple[SecretKeyRef, ...],
        max_age_seconds: float = secrets.DEFAULT_MAX_AGE_SECONDS,
    ) -> dict[SecretKeyRef, str]:
        """The keys' values, each Secret read at most once per `max_age_seconds` (`secrets.SecretCache`)."""
        return {ref: await self.secrets.value(namespace, ref, max_age_seconds) for ref in refs}

    async def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            await asyncio.to_thread(self.core.read_namespaced_service_account, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    # --- owned objects ---
    async def create_deployment(self, desired: dict[str, Any]) -> DeploymentState | None:
        """Create the worker Deployment and return it as created; None if one of that name exists (made
        meanwhile by the other handler, or someone else's): the caller reads and checks it."""
        meta = desired["metadata"]
        try:
            created: Any = await self._write(
                f"creating Deployment {meta['name']!r}",
                self.apps.create_namespaced_deployment,
                meta["namespace"],
                desired,
            )
        except ApiException as error:
            if error.status != 409:
                raise
            return None
        return deployment_state(created)

    async def replace_pod_template(self, current: DeploymentState, desired: dict[str, Any]) -> None:
        """Roll the pods: the whole template is replaced (a field removed from the spec goes), our labels
        set, and everything else of the Deployment (replicas above all: the scaler's) kept as it is. A
        conflict (the Deployment controller wrote its status meanwhile) reads the Deployment again."""
        meta = desired["metadata"]
        model = current.model
        if model is None:  # as watched: the whole object is read now
            model = await asyncio.to_thread(
                self.apps.read_namespaced_deployment, meta["name"], meta["namespace"]
            )
        for _ in range(REPLACE_ATTEMPTS):
            body: dict[str, Any] = self.api_client.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
            body["spec"]["template"] = desired["spec"]["template"]
            labels = body["metadata"].get("labels") or {}
            body["metadata"]["labels"] = {**labels, **desired["metadata"]["labels"]}
            try:
                await self._write(
                    f"updating Deployment {meta['name']!r}",
                    self.apps.replace_namespaced_deployment,
                    meta["name"],
                    meta["namespace"],
                    body,
                )
                return
            except ApiException as error:
                if error.status != 409:
                    raise
            model = await asyncio.to_thread(
                self.apps.read_namespaced_deployment, meta["name"], meta["namespace"]
            )
        # Still changing under us: the next tick compares the hash again and retries.

    async def ensure_exists(self, desired: dict[str, Any], owner_uid: str) -> bool:
        """Create a simple owned object (ServiceAccount, PDB, Service) if it is missing; one of that name
        that another owner controls is an OwnershipConflict, never merged into. True if it created."""
        meta, kind = desired["metadata"], desired["kind"]
        create, read = {
            "ServiceAccount": (
                self.core.create_namespaced_service_account,
                self.core.read_namespaced_service_account,
            ),
            "Service": (self.core.create_namespaced_service, self.core.read_namespaced_service),
            "PodDisruptionBudget": (
                self.policy.create_namespaced_pod_disruption_budget,
                self.policy.read_namespaced_pod_disruption_budget,
            ),
        }[kind]
        try:
            await self._write(f"creating {kind} {meta['name']!r}", create, meta["namespace"], desired)
        except ApiException as error:
            if error.status != 409:
                raise
            existing: Any = await asyncio.to_thread(read, meta["name"], meta["namespace"])
            check_owner(kind, meta["name"], controller_uid(existing.metadata.owner_references), owner_uid)
            return False
        return True

    async def config_map_value(self, namespace: str, name: str, key: str, owner_uid: str) -> str | None:
        """One value of an owned ConfigMap; None if the ConfigMap or the key is missing."""
        try:
            found: Any = await asyncio.to_thread(self.core.read_namespaced_config_map, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        check_owner("ConfigMap", name, controller_uid(found.metadata.owner_references), owner_uid)
        value = (found.data or {}).get(key)
        return str(value) if value is not None else None

    async def apply_config_map(self, desired: dict[str, Any], owner_uid: str) -> None:
        """Create an owned ConfigMap, or replace its data (the rate-limit share); never one we do not own."""
        meta = desired["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        try:
            await self._write(
                f"creating ConfigMap {name!r}", self.core.create_namespaced_config_map, namespace, desired
            )
            return
        except ApiException as error:
            if error.status != 409:
                raise
        found: Any = await asyncio.to_thread(self.core.read_namespaced_config_map, name, namespace)
        check_owner("ConfigMap", name, controller_uid(found.metadata.owner_references), owner_uid)
        body = {"data": desired["data"]}
        await self._write(
            f"updating ConfigMap {name!r}", self.core.patch_namespaced_config_map, name, namespace, body
        )

    async def deployment_state(self, namespace: str, name: str) -> DeploymentState | None:
        try:
            deployment: Any = await asyncio.to_thread(self.apps.read_namespaced_deployment, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return deployment_state(deployment)

    async def _write(self, what: str, call: Any, *args: Any) -> Any:
        """A write; the API server's refusal (invalid, forbidden by RBAC or an admission policy) becomes
        ApiRejected with its own message. Not found, conflicts and server errors pass through."""
        try:
            return await asyncio.to_thread(call, *args)
        except ApiException as error:
            if error.status is not None and 400 <= error.status < 500 and error.status not in (404, 409):
                raise ApiRejected(f"{what}: {api_message(error)}") from error
            raise

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        await self._write(
            f"scaling Deployment {name!r}", self.apps.patch_namespaced_deployment_scale, name, namespace, body
        )

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
            await self._write(f"annotating pod {pod!r}", self.core.patch_namespaced_pod, pod, namespace, body)
        except ApiException as error:
            if error.status != 404:  # a pod that just went away needs no cost
                raise

    async def queue_consumer(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The QueueConsumer as plain data; None if it is gone."""
        try:
            body: dict[str, Any] = await asyncio.to_thread(
                self.custom.get_namespaced_custom_object, api.GROUP, api.VERSION, namespace, api.PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return body

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._write(
            "writing the status",
            self.custom.patch_namespaced_custom_object_status,
            api.GROUP,
            api.VERSION,
            namespace,
            api.PLURAL,
            name,
            {"status": status},
        )


def ensure_peering_objects(api_client: client.ApiClient, name: str, namespaces: list[str]) -> None:
    """kopf's peering object for this operator: a ClusterKopfPeering, or a KopfPeering in each watched
    namespace. kopf waits, paused, until its object exists; the chart cannot create it in the same release
    as the peering CRDs, so each replica makes sure of it at startup (an existing one is left as it is)."""
    custom: Any = client.CustomObjectsApi(api_client)
    where: list[str | None] = [*namespaces] or [None]
    for namespace in where:
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
        try:
            if namespace:
                custom.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", body)
            else:
                custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
        except ApiException as error:
            if error.status != 409:  # 409: it exists
                raise RuntimeError(f"cannot create the {kind} {name!r}: {api_message(error)}") from error
