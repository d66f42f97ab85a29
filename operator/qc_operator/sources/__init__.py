"""Backlog sources, one module each, found through the registries below (as KEDA's scalers builder does).

Adding a broker is one module (settings, parsing from the spec, worker environment, backlog reader) and
one line in `MESSAGE_SOURCES`; adding a metrics backend is one module and one line in `BACKLOG_SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qc_operator.sources import prometheus, pubsub, rabbitmq
from qc_operator.sources.base import BacklogSettings, MessageSourceSettings

# spec.source.<key> -> its parser (the raw settings, and whether spec.backlog replaces the source's reading)
MESSAGE_SOURCES: Mapping[str, Callable[[Mapping[str, Any], bool], MessageSourceSettings]] = {
    pubsub.KIND: pubsub.parse,
    rabbitmq.KIND: rabbitmq.parse,
}
# spec.backlog.<key> -> its parser: a backlog read elsewhere than from the broker's own API
BACKLOG_SOURCES: Mapping[str, Callable[[Mapping[str, Any]], BacklogSettings]] = {
    prometheus.KIND: prometheus.parse,
}
