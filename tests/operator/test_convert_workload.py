"""`convert.workload`: the Deployment a ScaledObject scales -> spec.worker, checked through `spec.parse`'s
worker and what `builders` makes of it."""

from __future__ import annotations

from typing import Any

import pytest

from qc_operator.convert import workload
from qc_operator.convert.model import ConversionError, Options

DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "orders"},
    "spec": {
        "replicas": 3,
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": {"app": "orders"}},
        "template": {
            "metadata": {"labels": {"app": "orders", "tier": "batch"}, "annotations": {"a": "b"}},
            "spec": {
                "serviceAccountName": "orders",
                "terminationGracePeriodSeconds": 120,
                "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"pool": "workers"},
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "containers": [
                    {"name": "proxy", "image": "example.com/proxy:1"},
                    {
                        "name": "worker",
                        "image": "example.com/orders:2",
                        "imagePullPolicy": "Always",
                        "command": ["orders-consumer"],
                        "env": [{"name": "MODE", "value": "fast"}],
                        "envFrom": [{"secretRef": {"name": "all"}}],
                        "resources": {"requests": {"cpu": "1"}},
                    },
                ],
            },
        },
    },
}


def test_the_chosen_container_and_the_pod_template_carry_over() -> None:
    chosen = workload.container(DEPLOYMENT, "worker")
    worker, notes = workload.worker_section(DEPLOYMENT, chosen, Options(task="orders.tasks:handle"))
    assert worker == {
        "image": "example.com/orders:2",
        "task": "orders.tasks:handle",
        "imagePullPolicy": "Always",
        "resources": {"requests": {"cpu": "1"}},
        "env": [{"name": "MODE", "value": "fast"}],
        "serviceAccountName": "orders",
        "podTemplate": {
            "metadata": {"labels": {"tier": "batch"}, "annotations": {"a": "b"}},
            "spec": {"nodeSelector": {"pool": "workers"}},
        },
    }
    text = "\n".join(notes)
    for left_out in (
        "'worker' command",
        "'worker' envFrom",
        "other containers ['proxy']",
        "pod spec volumes",
        "pod spec terminationGracePeriodSeconds",
        "Deployment replicas 3",
        "Deployment strategy",
        "pod labels {'app': 'orders'}: not carried over",
    ):
        assert left_out in text, left_out


def test_the_first_container_by_default_and_the_image_from_the_command_line() -> None:
    chosen = workload.container(DEPLOYMENT, None)
    worker, notes = workload.worker_section(DEPLOYMENT, chosen, Options(task="t:f", image="example.com/qc:1"))
    assert worker["image"] == "example.com/qc:1"
    assert not any("worker.image is the Deployment's" in note for note in notes)


def test_no_task_or_no_such_container_is_an_error() -> None:
    with pytest.raises(ConversionError, match="pass --task MODULE:FUNCTION"):
        workload.worker_section(DEPLOYMENT, workload.container(DEPLOYMENT, None), Options())
    with pytest.raises(ConversionError, match="has no container 'consumer'"):
        workload.container(DEPLOYMENT, "consumer")
