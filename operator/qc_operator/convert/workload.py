"""The Deployment a ScaledObject targets -> `spec.worker`.

The QueueConsumer runs `qc-worker` with one task function in the Deployment's image; what the pod template
says about placement and identity carries over (`podTemplate`, `serviceAccountName`, `env`, `resources`),
what belongs to the old consumer program (its command, ports, probes, other containers, volumes) gets a
note. Called by `convert.consumer`; pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qc_operator.convert.model import ConversionError, Options

# Pod spec fields that podTemplate may not set (the CRD refuses them) or that the operator sets itself.
_POD_FIELDS_NOT_CARRIED = {
    "containers": "the worker container is the operator's",
    "initContainers": "podTemplate may not add containers",
    "volumes": "podTemplate may not add volumes",
    "terminationGracePeriodSeconds": "the operator derives it from worker.drainGraceSeconds",
    "serviceAccount": "deprecated; serviceAccountName carries over",
}
# What the apiserver fills into every pod spec (kubectl get -o yaml shows them): not the user's choice.
_POD_DEFAULTS: dict[str, Any] = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}
_CONTAINER_FIELDS_NOTED = (
    "command",
    "args",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "volumeMounts",
    "envFrom",
    "securityContext",
    "lifecycle",
    "workingDir",
)


def container(deployment: Mapping[str, Any], name: str | None) -> Mapping[str, Any]:
    """The container KEDA read variables from: `envSourceContainerName`, else the first."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    where = f"Deployment {deployment.get('metadata', {}).get('name')}"
    if not containers:
        raise ConversionError(f"{where} has no containers")
    if name is None:
        chosen: Mapping[str, Any] = containers[0]
        return chosen
    for candidate in containers:
        if candidate.get("name") == name:
            found: Mapping[str, Any] = candidate
            return found
    raise ConversionError(f"{where} has no container {name!r} (scaleTargetRef.envSourceContainerName)")


def worker_section(
    deployment: Mapping[str, Any], chosen: Mapping[str, Any], options: Options
) -> tuple[dict[str, Any], list[str]]:
    """`spec.worker` and the notes for what it leaves out."""
    if not options.task:
        raise ConversionError(
            "the QueueConsumer runs a task function for each message in qc-worker, not the Deployment's "
            "command: pass --task MODULE:FUNCTION"
        )
    notes: list[str] = []
    image = options.image or chosen.get("image")
    if not image:
        raise ConversionError(f"container {chosen.get('name')!r} has no image: pass --image")
    worker: dict[str, Any] = {"image": str(image), "task": options.task}
    if options.image is None:
        notes.append(
            f"worker.image is the Deployment's ({image}): it must have qc-worker and the task's module "
            "installed"
        )
    for name in ("imagePullPolicy", "resources"):
        if chosen.get(name):
            worker[name] = chosen[name]
    env = [dict(e) for e in chosen.get("env") or [] if isinstance(e, Mapping) and e.get("name")]
    if env:
        worker["env"] = env
    for name in _CONTAINER_FIELDS_NOTED:
        if chosen.get(name):
            notes.append(
                f"container {chosen.get('name')!r} {name}: not carried over (the worker container is the "
                "operator's)"
            )
    template = (deployment.get("spec") or {}).get("template") or {}
    pod_spec = {k: v for k, v in (template.get("spec") or {}).items() if _POD_DEFAULTS.get(k, ...) != v}
    others = [c.get("name") for c in pod_spec.get("containers") or [] if c is not chosen]
    if others:
        notes.append(f"other containers {others}: not carried over (podTemplate may not add containers)")
    if pod_spec.get("serviceAccountName"):
        worker["serviceAccountName"] = pod_spec["serviceAccountName"]
    for name, why in _POD_FIELDS_NOT_CARRIED.items():
        if pod_spec.pop(name, None) is not None and name not in ("containers",):
            notes.append(f"pod spec {name}: not carried over ({why})")
    pod_spec.pop("serviceAccountName", None)
    pod_template: dict[str, Any] = {}
    metadata = {
        k: dict(v)
        for k, v in (template.get("metadata") or {}).items()
        if k in ("labels", "annotations") and v
    }
    # The old Deployment's selector must not match the new pods (two controllers over one set of pods).
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    dropped = {k: v for k, v in metadata.get("labels", {}).items() if selector.get(k) == v}
    if dropped:
        metadata["labels"] = {k: v for k, v in metadata["labels"].items() if k not in dropped}
        metadata = {k: v for k, v in metadata.items() if v}
        notes.append(
            f"pod labels {dropped}: not carried over (the old Deployment's selector would match them)"
        )
    if metadata:
        pod_template["metadata"] = metadata
    if pod_spec:
        pod_template["spec"] = pod_spec
    if pod_template:
        worker["podTemplate"] = pod_template
    deployment_spec = deployment.get("spec") or {}
    if deployment_spec.get("replicas") is not None:
        notes.append(
            f"Deployment replicas {deployment_spec['replicas']}: the operator sizes its own Deployment"
        )
    if deployment_spec.get("strategy"):
        notes.append("Deployment strategy: not carried over (the operator's Deployment rolls with its own)")
    notes.append(
        "the operator makes its own Deployment, <name>-worker: delete the ScaledObject and scale the old "
        "Deployment to 0 once the QueueConsumer's workers run"
    )
    return worker, notes
