"""KEDA's `gcp-pubsub` trigger -> `spec.source.pubsub` (KEDA's scalers/gcp-pub-sub.md, v2.21).

The QueueConsumer pulls a subscription and scales on its undelivered messages (Cloud Monitoring's
num_undelivered_messages, KEDA's `mode: SubscriptionSize`); a topic or another metric has no equivalent.
Credentials: a service-account key in a Secret (KEDA's `GoogleApplicationCredentials` or
`credentialsFromEnv`) becomes `serviceAccountKeySecretRef`, used by the operator and the workers;
`podIdentity: gcp` is Application Default Credentials, which is what the QueueConsumer does without one.
Called by `convert.consumer`; pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from qc_operator.convert.model import NotConvertible, Options, TriggerPlan, number
from qc_operator.convert.params import TriggerParams

TYPE = "gcp-pubsub"
DEFAULT_VALUE = 10.0  # KEDA's default target (messages per replica)
_MODES = ("SubscriptionSize", "NumUndeliveredMessages")
_FULL_NAME = re.compile(r"^projects/(?P<project>[^/]+)/subscriptions/(?P<subscription>[^/]+)$")
_KNOWN_METADATA = {
    "subscriptionName",
    "topicName",
    "mode",
    "value",
    "activationValue",
    "subscriptionSize",
    "credentials",
    "GoogleApplicationCredentials",
}
_IGNORED_METADATA = {
    "valueIfNull": "no reading is a failed read here (fallbackReplicas applies), never a value",
    "timeHorizon": "the operator reads the latest point of the last few minutes",
    "aggregation": "num_undelivered_messages is not a distribution",
}


def subscription(name: str, project: str | None, where: str) -> tuple[str, str]:
    """(project, subscription) from `projects/P/subscriptions/S`, or `S` and the given project."""
    full = _FULL_NAME.match(name)
    if full:
        return full["project"], full["subscription"]
    if "/" in name:
        raise NotConvertible(f"{where} {name!r} is neither a subscription id nor projects/P/subscriptions/S")
    if not project:
        raise NotConvertible(
            f"{where} {name!r} does not say its project (KEDA took it from the credentials): pass "
            "--gcp-project PROJECT"
        )
    return project, name


def convert(trigger: Mapping[str, Any], params: TriggerParams, options: Options) -> TriggerPlan:
    metadata = params.metadata
    metric_type = str(trigger.get("metricType") or "AverageValue")
    if metric_type != "AverageValue":
        raise NotConvertible(
            f"metricType {metric_type}: the QueueConsumer's target is per replica (AverageValue)"
        )
    if params.given("topicName"):
        raise NotConvertible("it watches a topic; a QueueConsumer pulls a subscription (subscriptionName)")
    mode = str(metadata.get("mode") or "SubscriptionSize")
    if mode not in _MODES:
        raise NotConvertible(
            f"mode {mode} is not the subscription's undelivered messages, which the QueueConsumer scales on"
        )
    name = params.literal("subscriptionName")
    if not name:
        raise NotConvertible(f"no subscription name: {params.where('subscriptionName')}")
    project, subscription_id = subscription(name, options.gcp_project, "subscriptionName")
    notes: list[str] = []
    if metadata.get("subscriptionSize") not in (None, "") and metadata.get("value") in (None, ""):
        target = number(metadata["subscriptionSize"], "gcp-pubsub trigger subscriptionSize")
        notes.append("subscriptionSize (removed in KEDA 2.20) taken as the target value")
    else:
        target = number(metadata.get("value") or DEFAULT_VALUE, "gcp-pubsub trigger value")
    activation = number(metadata.get("activationValue") or 0, "gcp-pubsub trigger activationValue")
    pubsub: dict[str, Any] = {"project": project, "subscription": subscription_id}
    key = params.secret("GoogleApplicationCredentials") or params.secret("credentials")
    if key is not None:
        pubsub["serviceAccountKeySecretRef"] = key.as_spec()
    elif params.given("GoogleApplicationCredentials") or params.given("credentials"):
        where = params.where("GoogleApplicationCredentials")
        if params.given("credentials"):
            where = params.where("credentials")
        raise NotConvertible(
            f"{where}; the QueueConsumer reads a service-account key from a Secret key: put it in one and "
            "reference it from the Deployment's variable (valueFrom.secretKeyRef) or a TriggerAuthentication"
        )
    elif params.pod_identity not in (None, "gcp"):
        raise NotConvertible(f"{params.auth_name} uses podIdentity {params.pod_identity}, not Google's")
    else:
        notes.append(
            "no service-account key: the operator and the workers use Application Default Credentials "
            "(Workload Identity): bind the worker pods' ServiceAccount and the operator's to a Google "
            "service account that may read Cloud Monitoring and pull the subscription"
        )
    for meta, why in _IGNORED_METADATA.items():
        if metadata.get(meta) not in (None, ""):
            notes.append(f"gcp-pubsub trigger {meta}={metadata[meta]!r}: not carried over ({why})")
    notes.append(
        "Cloud Monitoring's Pub/Sub metrics lag 1-3 minutes, for KEDA and for the operator; the operator "
        "corrects the reading when the workers find the subscription empty"
    )
    notes.extend(params.unknown_metadata_notes(TYPE, _KNOWN_METADATA | set(_IGNORED_METADATA)))
    notes.extend(params.unused_auth_notes({"GoogleApplicationCredentials", "credentials"}))
    return TriggerPlan(TYPE, {"pubsub": pubsub}, None, target, activation, tuple(notes))
