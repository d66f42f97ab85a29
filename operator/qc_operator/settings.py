"""Operator settings, each from an environment variable (the chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorSettings:
    # QC_METRICS_PORT: port of the operator's /metrics (its health endpoint is kopf's, see __main__).
    metrics_port: int = 9090
    # KUBECONFIG: a kubeconfig file; unset in a pod, where the in-cluster credentials are used.
    kubeconfig: str | None = None
    # QC_PEERING: kopf peering name shared by operator replicas (one acts at a time, the others wait);
    # "" runs standalone (one replica only). Needs kopf's peering CRDs, which the chart installs.
    peering: str = ""
    # QC_PEERING_LIFETIME_SECONDS: how long a replica's peering heartbeat counts; a standby takes over
    # from an active replica that died without saying goodbye after at most this long (a clean stop hands
    # over at once). Each replica renews its heartbeat 5-10 s before it runs out.
    peering_lifetime_seconds: int = 20
    # QC_SHARD_INDEX / QC_SHARD_COUNT: this operator handles the QueueConsumers of shard INDEX of COUNT
    # (`sharding`: the label queueconsumer.io/shard, else a hash of the uid). 0 of 1: all of them.
    shard_index: int = 0
    shard_count: int = 1

    @staticmethod
    def from_environment() -> OperatorSettings:
        return OperatorSettings(
            metrics_port=int(os.environ.get("QC_METRICS_PORT", "9090")),
            kubeconfig=os.environ.get("KUBECONFIG") or None,
            peering=os.environ.get("QC_PEERING", ""),
            peering_lifetime_seconds=int(os.environ.get("QC_PEERING_LIFETIME_SECONDS", "20")),
            shard_index=int(os.environ.get("QC_SHARD_INDEX", "0")),
            shard_count=int(os.environ.get("QC_SHARD_COUNT", "1")),
        )
