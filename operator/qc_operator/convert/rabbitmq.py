"""KEDA's `rabbitmq` trigger -> `spec.source.rabbitmq` (KEDA's scalers/rabbitmq-queue.md, v2.21).

Only `mode: QueueLength` (or the deprecated `queueLength`) with the AverageValue metric type says what our
scaler measures: messages per replica. KEDA reads the queue over AMQP (ready messages) or the management
API (ready + unacknowledged); the operator always reads the management API and the workers connect over
AMQP, so the QueueConsumer names two Secret keys. The trigger's `host` fills the one its protocol says; the
other comes from the command line. Called by `convert.consumer`; pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qc_operator.convert.model import NotConvertible, Options, TriggerPlan, number
from qc_operator.convert.params import TriggerParams

TYPE = "rabbitmq"
DEFAULT_QUEUE_LENGTH = 20.0  # KEDA's default target when neither mode/value nor queueLength is set
# Parameters we read; anything else the trigger's authentication gives gets a note.
_USED = {"host", "vhostName", "vHostName", "username", "password", "tls", "ca", "cert", "key"}
_KNOWN_METADATA = {"protocol", "mode", "value", "activationValue", "queueName", "queueLength", "useRegex"}
_IGNORED_METADATA = {
    "unsafeSsl": "TLS certificate checks are always on",
    "timeout": "the operator's HTTP timeout is its own",
    "excludeUnacknowledged": "the backlog is ready + unacknowledged messages",
}


def _target(metadata: Mapping[str, Any]) -> float:
    mode = str(metadata.get("mode") or "QueueLength")
    if mode != "QueueLength":
        raise NotConvertible(
            f"mode {mode} scales on a rate, a ratio or a time, not on the queue's messages; the "
            "QueueConsumer scales on messages (its default preset adds a drain-time target from the "
            "workers' measured throughput, which keeps up with the publish rate)"
        )
    if metadata.get("value") not in (None, ""):
        return number(metadata["value"], "rabbitmq trigger value")
    if metadata.get("queueLength") not in (None, ""):
        return number(metadata["queueLength"], "rabbitmq trigger queueLength")
    return DEFAULT_QUEUE_LENGTH


def convert(trigger: Mapping[str, Any], params: TriggerParams, options: Options) -> TriggerPlan:
    metadata = params.metadata
    metric_type = str(trigger.get("metricType") or "AverageValue")
    if metric_type != "AverageValue":
        raise NotConvertible(
            f"metricType {metric_type}: the QueueConsumer's target is per replica (AverageValue)"
        )
    queue = str(metadata.get("queueName") or "")
    if not queue:
        raise NotConvertible("it names no queueName")
    if str(metadata.get("useRegex", "false")).lower() == "true":
        raise NotConvertible(
            f"useRegex selects queues by the pattern {queue!r}; a QueueConsumer consumes one queue"
        )
    if params.pod_identity is not None:
        raise NotConvertible(
            f"{params.auth_name} authenticates with podIdentity {params.pod_identity}; the operator reads "
            "the management API with the user and password of the URL in a Secret"
        )
    target = _target(metadata)
    activation = number(metadata.get("activationValue") or 0, "rabbitmq trigger activationValue")
    notes: list[str] = []
    connection, management = _secrets(params, options, notes)
    rabbitmq: dict[str, Any] = {"queue": queue}
    vhost = params.literal("vhostName") or params.literal("vHostName")
    vhost_secret = params.secret("vhostName") or params.secret("vHostName")
    if vhost:
        rabbitmq["vhost"] = vhost
    elif vhost_secret is not None:
        notes.append(
            f"source.rabbitmq.vhost: KEDA read vhostName from the Secret key {vhost_secret.name}/"
            f"{vhost_secret.key}; the QueueConsumer takes it written out: set vhost to that value"
        )
    else:
        notes.append(
            "source.rabbitmq.vhost: KEDA took the vhost from the host URL, which is in a Secret; the "
            "operator reads the management API in vhost '/' unless you set vhost"
        )
    rabbitmq["connectionSecretRef"] = connection
    rabbitmq["managementSecretRef"] = management
    notes.append(
        "source.rabbitmq.declareQueue: false: the workers use the queue as it is declared; set "
        "queueArguments if it has a dead-letter exchange or a delivery limit, so the workers know"
    )
    _credential_notes(params, notes)
    for name, why in _IGNORED_METADATA.items():
        if metadata.get(name) not in (None, ""):
            notes.append(f"rabbitmq trigger {name}={metadata[name]!r}: not carried over ({why})")
    notes.extend(params.unknown_metadata_notes(TYPE, _KNOWN_METADATA | _USED | set(_IGNORED_METADATA)))
    notes.extend(params.unused_auth_notes(_USED))
    return TriggerPlan(TYPE, {"rabbitmq": rabbitmq}, None, target, activation, tuple(notes))


def _secrets(
    params: TriggerParams, options: Options, notes: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The workers' amqp:// URL and the operator's management URL: the trigger's `host` is one of them
    (its protocol says which; `auto` and `amqp` mean AMQP), the command line gives the other."""
    protocol = str(params.metadata.get("protocol") or "auto")
    host = params.secret("host")
    host_is_http = protocol == "http"
    if (
        host is None
        and params.given("host")
        and not (options.rabbitmq_connection and options.rabbitmq_management)
    ):
        raise NotConvertible(
            f"{params.where('host')}; the QueueConsumer reads URLs from Secret keys: put the amqp:// URL and "
            "the management URL (http://user:password@host:15672) in a Secret and pass "
            "--rabbitmq-connection-secret and --rabbitmq-management-secret NAME/KEY"
        )
    connection = options.rabbitmq_connection or (None if host_is_http else host)
    management = options.rabbitmq_management or (host if host_is_http else None)
    if connection is None:
        raise NotConvertible(
            "the workers need the amqp:// URL in a Secret key and the trigger gives only the management "
            "API's: pass --rabbitmq-connection-secret NAME/KEY"
        )
    if management is None:
        raise NotConvertible(
            "the operator reads the backlog from the management API and the trigger gives only the amqp:// "
            "URL: pass --rabbitmq-management-secret NAME/KEY (a Secret key with "
            "http://user:password@host:15672)"
        )
    if protocol == "auto" and host is not None and options.rabbitmq_connection is None:
        notes.append(
            f"protocol auto: the Secret key {host.name}/{host.key} is taken for the workers' amqp:// URL; if "
            "it holds the management URL, pass --rabbitmq-connection-secret and --rabbitmq-management-secret"
        )
    if protocol != "http":
        notes.append(
            "KEDA over AMQP counted ready messages only; the operator counts ready + unacknowledged messages "
            "(what KEDA counts over the management API)"
        )
    return connection.as_spec(), management.as_spec()


def _credential_notes(params: TriggerParams, notes: list[str]) -> None:
    if params.given("username") or params.given("password"):
        notes.append(
            "username/password given apart from the URL: the QueueConsumer's Secret keys hold whole URLs, "
            "credentials included (amqp://user:password@host:5672/vhost): put them in the URLs"
        )
    if any(params.given(name) for name in ("tls", "ca", "cert", "key")):
        notes.append(
            "TLS client settings (tls, ca, cert, key): not carried over; an amqps:// URL in the Secret "
            "connects over TLS with the system's trusted CAs"
        )
