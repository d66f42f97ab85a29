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

    @staticmethod
    def from_environment() -> OperatorSettings:
        return OperatorSettings(
            metrics_port=int(os.environ.get("QC_METRICS_PORT", "9090")),
            kubeconfig=os.environ.get("KUBECONFIG") or None,
            peering=os.environ.get("QC_PEERING", ""),
        )
