"""Who reads what from the local apiserver: its audit log of GETs and LISTs, counted by client.

The apiserver's own counter (`apiserver_request_total`) has no client label, so at scale the operator's
reads cannot be told from kube-controller-manager's there. `KubeControlPlane(audit_reads=True)` starts
the apiserver with `reads_flags`; `reads_by_client` counts the log's events in a window of wall-clock
time by the user agent each client sends (`qc-operator/...` and kopf's `kopf/...` are the operator).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import yaml

READS_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "verbs": ["get", "list"]}, {"level": "None"}],
}
OPERATOR_AGENTS = ("qc-operator/", "kopf/")


def reads_flags(directory: Path, log: Path) -> list[str]:
    """kube-apiserver flags for a JSON audit log of reads at `log`, each event written before its request
    is answered (the default, blocking mode): the log is complete whenever it is read."""
    policy = directory / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(READS_POLICY))
    return [
        "--audit-policy-file", str(policy),
        "--audit-log-path", str(log),
        "--audit-log-format", "json",
    ]  # fmt: skip


def client_of(user_agent: str) -> str:
    """A short name for the client that sent `user_agent`: `operator` for ours, else the agent's first
    word (`kube-controller-manager/v1.34.1 (linux/amd64) ...` -> `kube-controller-manager`)."""
    if user_agent.startswith(OPERATOR_AGENTS):
        return "operator"
    return user_agent.split("/", 1)[0].strip() or "unnamed"


def _read(line: str) -> tuple[float, str, str, str] | None:
    """(received, unix seconds; verb; resource; user agent) of a completed request's event, else None:
    a line cut short by a stop, or anything not shaped like an audit event, is not a read to count."""
    try:
        event = json.loads(line)
        if not isinstance(event, dict) or event.get("stage") != "ResponseComplete":
            return None
        stamp = event["requestReceivedTimestamp"]
        received = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        reference = event.get("objectRef") or {}
        resource, verb, agent = reference.get("resource", ""), event.get("verb"), event.get("userAgent", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if isinstance(verb, str) and isinstance(resource, str) and isinstance(agent, str):
        return received, verb, resource, agent
    return None


def reads_by_client(lines: Iterable[str], start_unix: float, end_unix: float) -> Counter[tuple[str, str]]:
    """(client, resource) -> GETs and LISTs received in [start_unix, end_unix), from audit log lines
    (leases, the leader elections', and non-resource paths such as /metrics and /readyz left out)."""
    counts: Counter[tuple[str, str]] = Counter()
    for event in filter(None, map(_read, lines)):
        received, verb, resource, agent = event
        if verb in ("get", "list") and resource not in ("", "leases") and start_unix <= received < end_unix:
            counts[(client_of(agent), resource)] += 1
    return counts
