"""Pure functions building the objects a QueueConsumer owns: worker Deployment, ServiceAccount, PDB, Service,
and the rate-limit ConfigMap (only with `spec.worker.maxMessagesPerSecond`).

No API calls here: `kube` applies what these return. Every object carries the consumer's labels and an
owner reference, so deleting the QueueConsumer garbage-collects them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from qc_common import api, worker_env
from qc_operator.spec import QueueConsumerSpec

DRAIN_MARGIN_SECONDS = 15  # beyond the drain grace: time to hand back unstarted messages and exit
WORKER_USER_ID = 10001
WORKER_BASE_MEMORY_MIB = 70  # a worker before its first task, measured on the node
WORKER_MEMORY_PER_SLOT_MIB = 32  # measured: about 28 per busy process slot at concurrency 16
WORKER_MEMORY_LIMIT_RATIO = 1.5
WORKER_CPU_REQUEST = "100m"


def worker_name(consumer: str) -> str:
    return f"{consumer}-worker"


def labels(consumer: str) -> dict[str, str]:
    return {
        api.CONSUMER_LABEL: consumer,
        api.COMPONENT_LABEL: api.WORKER_COMPONENT,
        api.MANAGED_BY_LABEL: api.MANAGED_BY_VALUE,
        api.NAME_LABEL: "qc-worker",
        api.INSTANCE_LABEL: consumer,
    }


def selector(consumer: str) -> dict[str, str]:
    return {api.CONSUMER_LABEL: consumer, api.COMPONENT_LABEL: api.WORKER_COMPONENT}


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(owner: dict[str, Any], name: str) -> dict[str, Any]:
    consumer = owner["metadata"]["name"]
    return {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": labels(consumer),
        "ownerReferences": [owner_reference(owner)],
    }


def rate_limit_name(consumer: str) -> str:
    return f"{worker_name(consumer)}-rate-limit"


def rate_limit_config_map(owner: dict[str, Any], share_text: str) -> dict[str, Any]:
    """Each pod's share of the fleet's rate limit (`budget.share_text`). The pods mount it: a change reaches
    them in place (the kubelet's sync), with no rollout, since the pod template never holds the value."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(owner, rate_limit_name(owner["metadata"]["name"])),
        "data": {api.RATE_LIMIT_KEY: share_text},
    }


def _rate_limit_files(consumer: str, spec: QueueConsumerSpec) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(volume, mount) of the share's ConfigMap, when the spec sets a limit. Not optional: a pod waits for
    it rather than start without a limit."""
    if spec.worker.max_messages_per_second is None:
        return []
    volume = {"name": "rate-limit", "configMap": {"name": rate_limit_name(consumer)}}
    return [(volume, {"name": "rate-limit", "mountPath": api.RATE_LIMIT_MOUNT_PATH, "readOnly": True})]


def worker_environment(spec: QueueConsumerSpec) -> list[dict[str, Any]]:
    w = spec.worker
    env: list[dict[str, Any]] = [
        {"name": worker_env.TASK, "value": w.task},
        {"name": worker_env.SOURCE, "value": spec.source_kind},
        {"name": worker_env.CONCURRENCY, "value": str(w.concurrency)},
        {"name": worker_env.TASK_TIME_LIMIT_SECONDS, "value": str(w.task_time_limit_seconds)},
        {"name": worker_env.MAX_DELIVERY_ATTEMPTS, "value": str(w.max_delivery_attempts)},
        {"name": worker_env.DRAIN_GRACE_SECONDS, "value": str(w.effective_drain_grace_seconds)},
        {"name": worker_env.MAX_TASKS_PER_CHILD, "value": str(w.max_tasks_per_child)},
        {"name": worker_env.MAX_MEMORY_PER_CHILD_MIB, "value": str(w.max_memory_per_child_mib)},
        {"name": worker_env.METRICS_PORT, "value": str(api.WORKER_METRICS_PORT)},
        *spec.source.worker_environment(),
        *(
            [
                {
                    "name": worker_env.RATE_LIMIT_FILE,
                    "value": f"{api.RATE_LIMIT_MOUNT_PATH}/{api.RATE_LIMIT_KEY}",
                }
            ]
            if w.max_messages_per_second is not None
            else []
        ),
    ]
    # The user's env comes last so it can override (e.g. PUBSUB_EMULATOR_HOST, QC_LOG_LEVEL).
    return env + [copy.deepcopy(e) for e in w.env]


def default_resources(concurrency: int) -> dict[str, Any]:
    """Requests and limits for a worker whose spec names none, from what a worker measured on a real node
    (`make bench-pod-memory`, README "Memory on real pods"): about 70 MiB, plus up to about 28 MiB per
    process slot when every slot runs; the limit leaves half as much again, so the defaults never OOM."""
    request_mib = WORKER_BASE_MEMORY_MIB + WORKER_MEMORY_PER_SLOT_MIB * concurrency
    limit_mib = math.ceil(request_mib * WORKER_MEMORY_LIMIT_RATIO)
    return {
        "requests": {"cpu": WORKER_CPU_REQUEST, "memory": f"{request_mib}Mi"},
        "limits": {"memory": f"{limit_mib}Mi"},
    }


def termination_grace_seconds(spec: QueueConsumerSpec) -> int:
    w = spec.worker
    return max(w.effective_drain_grace_seconds, w.task_time_limit_seconds) + DRAIN_MARGIN_SECONDS


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overlay` over `base` (dicts merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def pod_template(owner: dict[str, Any], spec: QueueConsumerSpec) -> dict[str, Any]:
    consumer = owner["metadata"]["name"]
    w = spec.worker
    files = spec.source.worker_files() + _rate_limit_files(consumer, spec)
    container: dict[str, Any] = {
        "name": "worker",
        "image": w.image,
        "command": ["qc-worker"],
        "env": worker_environment(spec),
        "ports": [{"name": api.WORKER_METRICS_PORT_NAME, "containerPort": api.WORKER_METRICS_PORT}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": api.WORKER_METRICS_PORT_NAME},
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": api.WORKER_METRICS_PORT_NAME},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "resources": copy.deepcopy(w.resources) or default_resources(w.concurrency),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The process pool needs a writable /tmp; a source may mount Secrets as files (a Google key).
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}] + [m for _, m in files],
    }
    if w.image_pull_policy:
        container["imagePullPolicy"] = w.image_pull_policy
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "automountServiceAccountToken": False,  # workers never call the Kubernetes API
        "serviceAccountName": w.service_account_name or worker_name(consumer),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": WORKER_USER_ID,
            "runAsGroup": WORKER_USER_ID,
            "fsGroup": WORKER_USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": "tmp", "emptyDir": {}}] + [v for v, _ in files],
    }
    template = {
        "metadata": {
            "labels": labels(consumer),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(api.WORKER_METRICS_PORT),
                "prometheus.io/path": api.WORKER_METRICS_PATH,
            },
        },
        "spec": pod_spec,
    }
    template = merge(template, w.pod_template)
    # The hash of everything that shapes the pods: a change rolls them, a no-op does not.
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]
    template["metadata"]["annotations"][api.SPEC_HASH_ANNOTATION] = digest
    template["metadata"]["labels"].update(selector(consumer))  # the selector must always match
    return template


def deployment(owner: dict[str, Any], spec: QueueConsumerSpec, replicas: int) -> dict[str, Any]:
    consumer = owner["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(owner, worker_name(consumer)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(consumer)},
            # Never take capacity away during a rollout; new pods come up before old ones drain.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": pod_template(owner, spec),
        },
    }


def service_account(owner: dict[str, Any]) -> dict[str, Any]:
    consumer = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(owner, worker_name(consumer)),
        "automountServiceAccountToken": False,
    }


def pod_disruption_budget(owner: dict[str, Any]) -> dict[str, Any]:
    consumer = owner["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(owner, worker_name(consumer)),
        # Voluntary evictions (node drains) take one worker at a time; each drains before it goes.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(consumer)}},
    }


def metrics_service(owner: dict[str, Any]) -> dict[str, Any]:
    consumer = owner["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, f"{worker_name(consumer)}-metrics"),
        "spec": {
            "clusterIP": "None",
            "selector": selector(consumer),
            "ports": [
                {
                    "name": api.WORKER_METRICS_PORT_NAME,
                    "port": api.WORKER_METRICS_PORT,
                    "targetPort": api.WORKER_METRICS_PORT_NAME,
                }
            ],
        },
    }
