"""KEDA's `prometheus` trigger -> `spec.backlog.prometheus` (KEDA's scalers/prometheus.md, v2.21).

The query replaces the source's own backlog reading; where the messages come from is not in a prometheus
trigger, so the source comes from the command line (`--rabbitmq-queue` or `--pubsub-subscription`).
Authentication: a bearer token (`authModes: bearer`) or Google's (`podIdentity: gcp`, Google Managed
Prometheus); basic, TLS client certificates and custom headers have no equivalent. Called by
`convert.consumer`; pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qc_operator.convert.model import NotConvertible, Options, TriggerPlan, number
from qc_operator.convert.params import TriggerParams

TYPE = "prometheus"
_KNOWN_METADATA = {
    "serverAddress",
    "query",
    "threshold",
    "activationThreshold",
    "authModes",
    "ignoreNullValues",
    "bearerToken",
}
_IGNORED_METADATA = {
    "namespace": "send it in the query's labels, or use the tenant's URL",
    "customHeaders": "the operator sends no custom headers",
    "queryParameters": "the operator sends only the query",
    "unsafeSsl": "TLS certificate checks are always on",
    "timeout": "the operator's HTTP timeout is its own",
}


def convert(trigger: Mapping[str, Any], params: TriggerParams, options: Options) -> TriggerPlan:
    del options  # the source is the consumer's business (`convert.consumer`)
    metadata = params.metadata
    metric_type = str(trigger.get("metricType") or "AverageValue")
    if metric_type != "AverageValue":
        raise NotConvertible(
            f"metricType {metric_type}: the QueueConsumer's target is per replica (AverageValue)"
        )
    address, query = params.literal("serverAddress"), params.literal("query")
    if not address or not query:
        raise NotConvertible("it needs serverAddress and query")
    if metadata.get("threshold") in (None, ""):
        raise NotConvertible("it has no threshold (KEDA requires one)")
    target = number(metadata["threshold"], "prometheus trigger threshold")
    activation = number(metadata.get("activationThreshold") or 0, "prometheus trigger activationThreshold")
    modes = {m.strip() for m in str(metadata.get("authModes") or "").split(",") if m.strip()}
    unsupported = sorted(modes - {"bearer"})
    if unsupported:
        raise NotConvertible(
            f"authModes {', '.join(unsupported)}: spec.backlog.prometheus authenticates with a bearer token "
            "(bearerTokenSecretRef) or as Google (googleAuth) only"
        )
    prometheus: dict[str, Any] = {"serverAddress": address, "query": query}
    notes: list[str] = []
    used = {"bearerToken", "ca"}
    if "bearer" in modes:
        token = params.secret("bearerToken")
        if token is None:
            raise NotConvertible(f"authModes bearer, but {params.where('bearerToken')}")
        prometheus["bearerTokenSecretRef"] = token.as_spec()
    identity = params.pod_identity
    if identity == "gcp":
        prometheus["googleAuth"] = {}
        notes.append(
            "backlog.prometheus.googleAuth: Application Default Credentials (Workload Identity) of the "
            "operator's ServiceAccount, which must be allowed to read Cloud Monitoring"
        )
    elif identity is not None:
        raise NotConvertible(
            f"{params.auth_name} uses podIdentity {identity}; spec.backlog.prometheus authenticates with a "
            "bearer token or as Google only"
        )
    if params.given("ca"):
        notes.append(
            "a custom CA (ca) for the Prometheus endpoint: not carried over; the system's CAs are trusted"
        )
    if str(metadata.get("ignoreNullValues", "true")).lower() != "false":
        notes.append(
            "KEDA read an empty result as 0 (ignoreNullValues true); the operator reads it as a failed read "
            "(fallbackReplicas applies): end the query with `or vector(0)` if empty means no backlog"
        )
    for name, why in _IGNORED_METADATA.items():
        if metadata.get(name) not in (None, ""):
            notes.append(f"prometheus trigger {name}={metadata[name]!r}: not carried over ({why})")
    notes.extend(params.unknown_metadata_notes(TYPE, _KNOWN_METADATA | set(_IGNORED_METADATA)))
    notes.extend(params.unused_auth_notes(used))
    return TriggerPlan(TYPE, None, {"prometheus": prometheus}, target, activation, tuple(notes))
