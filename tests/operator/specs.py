"""Plain QueueConsumer bodies for the operator's unit tests (no API server involved)."""

from __future__ import annotations

import copy
from typing import Any

RABBITMQ_SPEC: dict[str, Any] = {
    "source": {
        "rabbitmq": {
            "queue": "orders",
            "connectionSecretRef": {"name": "rabbitmq", "key": "url"},
            "managementSecretRef": {"name": "rabbitmq", "key": "managementUrl"},
        }
    },
    "worker": {"image": "registry.example/app:1", "task": "app.tasks:handle"},
}
PUBSUB_SPEC: dict[str, Any] = {
    "source": {"pubsub": {"project": "proj", "subscription": "orders-sub", "deadLetterTopic": "dead"}},
    "worker": {"image": "registry.example/app:1", "task": "app.tasks:handle"},
}


def spec(base: dict[str, Any] = RABBITMQ_SPEC, **sections: Any) -> dict[str, Any]:
    """A copy of `base` with whole sections replaced or added (worker=..., scaling=..., backlog=...)."""
    raw = copy.deepcopy(base)
    raw.update(copy.deepcopy(sections))
    return raw


def body(raw_spec: dict[str, Any], name: str = "orders", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "queueconsumer.io/v1alpha1",
        "kind": "QueueConsumer",
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1", "generation": 3},
        "spec": raw_spec,
        "status": status,
    }
