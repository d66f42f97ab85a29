"""A ScaledObject, its (Cluster)TriggerAuthentications and its Deployment -> one QueueConsumer.

The steps: find the target Deployment (a missing one stops the conversion), convert the triggers (an
unsupported type stops it; of the supported ones the first convertible gives the source and the backlog,
KEDA's max over the others gets a note), then the worker (`workload`) and the scaling (`policy`). Every
module returns notes for what has no equivalent; they become the YAML comments above the QueueConsumer.
Called by `qc-operator convert` (`__main__`); pure: documents in, dicts and strings out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from qc_common import api
from qc_operator.convert import policy, prometheus, pubsub, rabbitmq, workload
from qc_operator.convert.model import ConversionError, Converted, NotConvertible, Options, TriggerPlan
from qc_operator.convert.params import TriggerParams

Converter = Callable[[Mapping[str, Any], TriggerParams, Options], TriggerPlan]
TRIGGERS: dict[str, Converter] = {
    rabbitmq.TYPE: rabbitmq.convert,
    pubsub.TYPE: pubsub.convert,
    prometheus.TYPE: prometheus.convert,
}
MAX_NAME_LENGTH = 48  # the CRD's rule: the worker Service is <name>-worker-metrics, 63 at most
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _key(document: Mapping[str, Any]) -> tuple[str | None, str]:
    metadata = document.get("metadata") or {}
    return metadata.get("namespace"), str(metadata.get("name") or "")


def _shown(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class Inputs:
    """The documents given, by kind and (namespace, name); a namespace left out matches any."""

    def __init__(self, documents: Iterable[Any]) -> None:
        self.by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for document in documents:
            if isinstance(document, Mapping) and document.get("kind") == "List":
                for item in document.get("items") or []:
                    self._add(item)
            elif isinstance(document, Mapping):
                self._add(document)

    def _add(self, document: Any) -> None:
        if isinstance(document, Mapping) and isinstance(document.get("kind"), str):
            self.by_kind.setdefault(document["kind"], []).append(document)

    def find(self, kind: str, namespace: str | None, name: str) -> Mapping[str, Any] | None:
        candidates = [d for d in self.by_kind.get(kind, []) if _key(d)[1] == name]
        exact = [d for d in candidates if _key(d)[0] == namespace]
        loose = [d for d in candidates if namespace is None or _key(d)[0] is None]
        chosen = exact or loose
        return chosen[0] if len(chosen) == 1 else None


def convert_all(documents: Iterable[Any], options: Options) -> list[Converted]:
    """Every ScaledObject in the documents; all the errors at once, in one ConversionError."""
    inputs = Inputs(documents)
    if inputs.by_kind.get("ScaledJob"):
        raise ConversionError(
            "a ScaledJob runs a Job per batch of messages; a QueueConsumer has no equivalent"
        )
    scaled_objects = inputs.by_kind.get("ScaledObject", [])
    if not scaled_objects:
        raise ConversionError("no ScaledObject in the input")
    if options.name and len(scaled_objects) > 1:
        raise ConversionError("--name names one QueueConsumer, and the input has several ScaledObjects")
    results: list[Converted] = []
    errors: list[str] = []
    for scaled_object in scaled_objects:
        try:
            results.append(convert_one(scaled_object, inputs, options))
        except ConversionError as error:
            errors.append(f"ScaledObject {_shown(*_key(scaled_object))}: {error}")
    if errors:
        raise ConversionError("\n".join(errors))
    return results


def _auth(trigger: Mapping[str, Any], inputs: Inputs, namespace: str | None) -> tuple[Mapping[str, Any], str]:
    ref = trigger.get("authenticationRef")
    if not ref:
        return {}, ""
    kind = str(ref.get("kind") or "TriggerAuthentication")
    if kind not in ("TriggerAuthentication", "ClusterTriggerAuthentication"):
        raise ConversionError(
            f"authenticationRef kind {kind} is neither TriggerAuthentication nor its Cluster form"
        )
    name = str(ref.get("name") or "")
    scope = None if kind.startswith("Cluster") else namespace
    found = inputs.find(kind, scope, name)
    if found is None:
        raise ConversionError(
            f"a trigger uses {kind} {_shown(scope, name)}, which is not in the input: add its YAML"
        )
    return found.get("spec") or {}, f"{kind} {_shown(*_key(found))}"


def _target(spec: Mapping[str, Any], inputs: Inputs, namespace: str | None) -> Mapping[str, Any]:
    ref = spec.get("scaleTargetRef") or {}
    kind, api_version = ref.get("kind") or "Deployment", ref.get("apiVersion") or "apps/v1"
    if (kind, api_version) != ("Deployment", "apps/v1"):
        raise ConversionError(f"it scales a {api_version} {kind}; a QueueConsumer replaces a Deployment only")
    if not ref.get("name"):
        raise ConversionError("scaleTargetRef names no Deployment")
    deployment = inputs.find("Deployment", namespace, str(ref["name"]))
    if deployment is None:
        raise ConversionError(
            f"its target, Deployment {_shown(namespace, str(ref['name']))}, is not in the input: add "
            f"its YAML (kubectl get deployment {ref['name']} -o yaml)"
        )
    return deployment


def _plan(
    spec: Mapping[str, Any],
    inputs: Inputs,
    namespace: str | None,
    container: Mapping[str, Any],
    options: Options,
) -> tuple[TriggerPlan, list[str]]:
    triggers = [t for t in spec.get("triggers") or [] if isinstance(t, Mapping)]
    if not triggers:
        raise ConversionError("it has no triggers")
    unsupported = sorted({str(t.get("type")) for t in triggers} - set(TRIGGERS))
    if unsupported:
        raise ConversionError(
            f"trigger type {', '.join(unsupported)} is not supported; convert handles {', '.join(TRIGGERS)}"
        )
    plans: list[tuple[str, TriggerPlan]] = []
    reasons: list[str] = []
    for number, trigger in enumerate(triggers, start=1):
        shown = (
            f"trigger {number} ({trigger['type']}{' ' + str(trigger['name']) if trigger.get('name') else ''})"
        )
        auth, auth_name = _auth(trigger, inputs, namespace)
        params = TriggerParams(trigger.get("metadata") or {}, auth, auth_name, container)
        try:
            plans.append((shown, TRIGGERS[str(trigger["type"])](trigger, params, options)))
        except NotConvertible as why:
            reasons.append(f"{shown} cannot be converted: {why}")
    if not plans:
        raise ConversionError("; ".join(reasons))
    (chosen_name, chosen), others = plans[0], plans[1:]
    notes = list(reasons) + [
        f"{name}: KEDA scaled on the largest of its triggers; the QueueConsumer reads one backlog, "
        f"{chosen_name}'s: not carried over"
        for name, _ in others
    ]
    return chosen, notes


def _source(plan: TriggerPlan, options: Options) -> dict[str, Any]:
    if plan.source is not None:
        return plan.source
    if options.rabbitmq_queue:
        if options.rabbitmq_connection is None:
            raise ConversionError(
                "--rabbitmq-queue needs --rabbitmq-connection-secret NAME/KEY (the amqp:// URL)"
            )
        return {
            "rabbitmq": {
                "queue": options.rabbitmq_queue,
                "connectionSecretRef": options.rabbitmq_connection.as_spec(),
            }
        }
    if options.pubsub_subscription:
        try:
            project, subscription = pubsub.subscription(
                options.pubsub_subscription, options.gcp_project, "--pubsub-subscription"
            )
        except NotConvertible as error:
            raise ConversionError(str(error)) from error
        return {"pubsub": {"project": project, "subscription": subscription}}
    raise ConversionError(
        f"a {plan.trigger_type} trigger says how big the backlog is, not where the messages come from: pass "
        "--rabbitmq-queue QUEUE with --rabbitmq-connection-secret NAME/KEY, or --pubsub-subscription "
        "projects/P/subscriptions/S"
    )


def _name(options: Options, deployment: Mapping[str, Any]) -> str:
    name = options.name or _key(deployment)[1]
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise ConversionError(
            f"the QueueConsumer's name {name!r} must be at most {MAX_NAME_LENGTH} characters, start with a "
            "letter and hold only lower-case letters, digits and '-': pass --name"
        )
    return name


def convert_one(scaled_object: Mapping[str, Any], inputs: Inputs, options: Options) -> Converted:
    namespace, so_name = _key(scaled_object)
    spec = scaled_object.get("spec") or {}
    metadata = scaled_object.get("metadata") or {}
    deployment = _target(spec, inputs, namespace)
    if (spec.get("advanced") or {}).get("scalingModifiers"):
        raise ConversionError(
            "advanced.scalingModifiers composes metrics with a formula; a QueueConsumer scales on one backlog"
        )
    chosen = workload.container(deployment, (spec.get("scaleTargetRef") or {}).get("envSourceContainerName"))
    plan, notes = _plan(spec, inputs, namespace, chosen, options)
    notes.extend(plan.notes)
    worker, worker_notes = workload.worker_section(deployment, chosen, options)
    annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
    scaling, scaling_notes = policy.scaling_section(spec, annotations, plan, options.keep_keda_behaviour)
    ours = policy.pause_annotations(annotations, notes)
    body: dict[str, Any] = {"source": _source(plan, options)}
    if plan.backlog is not None:
        body["backlog"] = plan.backlog
    body["worker"] = worker
    body["scaling"] = scaling
    resource_metadata: dict[str, Any] = {"name": _name(options, deployment)}
    if namespace:
        resource_metadata["namespace"] = namespace
    # KEDA labels its own objects (scaledobject.keda.sh/name): those are not the user's.
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if "keda.sh/" not in str(k)}
    if labels:
        resource_metadata["labels"] = labels
    if ours:
        resource_metadata["annotations"] = ours
    resource = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": resource_metadata, "spec": body}
    described = f"ScaledObject {_shown(namespace, so_name)} and Deployment {_shown(*_key(deployment))}"
    return Converted(resource, tuple(notes + scaling_notes + worker_notes), described)
