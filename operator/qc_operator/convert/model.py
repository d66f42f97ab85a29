"""The plain values `qc-operator convert` passes between its modules: the user's options, a secret key
reference, one trigger's conversion, and the two ways a conversion stops.

Pure data, no I/O: `convert.consumer` builds a QueueConsumer from these; `__main__` only reads the files and
prints what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConversionError(Exception):
    """The input cannot be converted (an unsupported trigger type, a missing target, a value we cannot
    express): the message says what and, where there is one, what to pass instead."""


class NotConvertible(Exception):
    """One trigger cannot be converted; fatal only when no other trigger of the ScaledObject can be."""


@dataclass(frozen=True)
class SecretRef:
    """A key of a Secret, as the QueueConsumer's `*SecretRef` fields name it."""

    name: str
    key: str

    def as_spec(self) -> dict[str, str]:
        return {"name": self.name, "key": self.key}

    @staticmethod
    def parse(text: str, flag: str) -> SecretRef:
        """`NAME/KEY` from the command line."""
        name, slash, key = text.partition("/")
        if not slash or not name or not key:
            raise ConversionError(f"{flag} takes NAME/KEY (a Secret and one of its keys), not {text!r}")
        return SecretRef(name, key)


@dataclass(frozen=True)
class Options:
    """What the command line adds to the KEDA objects: what KEDA never needed to know."""

    task: str | None = None  # module:function, the task qc-worker runs for each message
    image: str | None = None  # unset: the target Deployment's image
    name: str | None = None  # unset: the target Deployment's name (only with one ScaledObject)
    # KEDA + the HPA's numbers (scaling.preset hpa) instead of our defaults.
    keep_keda_behaviour: bool = False
    rabbitmq_connection: SecretRef | None = None  # the workers' amqp:// URL
    rabbitmq_management: SecretRef | None = None  # the operator's management API URL
    rabbitmq_queue: str | None = None  # where the messages come from, for a prometheus trigger
    pubsub_subscription: str | None = None  # projects/P/subscriptions/S, for a prometheus trigger
    gcp_project: str | None = None  # for a subscription named without its project


@dataclass(frozen=True)
class TriggerPlan:
    """One trigger, converted: where messages come from and/or where the backlog is read, and its targets."""

    trigger_type: str
    source: dict[str, Any] | None  # {"rabbitmq": {...}} or {"pubsub": {...}}; None: from the options
    backlog: dict[str, Any] | None  # {"prometheus": {...}}; None: the source's own backlog
    messages_per_replica: float  # the trigger's AverageValue target
    activation_backlog: float  # the trigger's activation value (0 unless set)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Converted:
    """One QueueConsumer and the comments that go above it: everything that has no equivalent."""

    resource: dict[str, Any]
    notes: tuple[str, ...] = field(default=())
    source_description: str = ""  # "ScaledObject ns/name and Deployment ns/name"


def number(text: Any, where: str) -> float:
    """A KEDA metadata number (always a string in the ScaledObject)."""
    try:
        value = float(str(text).strip())
    except ValueError as error:
        raise ConversionError(f"{where} is {text!r}, not a number") from error
    if value != value or value in (float("inf"), float("-inf")):
        raise ConversionError(f"{where} is {text!r}, not a finite number")
    return value
