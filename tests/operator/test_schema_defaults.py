"""One place per default: the CRD's schema. Every other place that states a default (the scaling module's
constants the simulator uses, the worker's own settings for `qc-worker` run by hand) is compared with it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from qc_operator import scaling, schema
from qc_operator.spec import parse_policy
from qc_worker.settings import WorkerSettings

WORKER_DEFAULTS = {f.name: f.default for f in dataclasses.fields(WorkerSettings)}


@pytest.mark.parametrize(
    ("crd_path", "elsewhere", "where"),
    [
        (("worker", "concurrency"), WORKER_DEFAULTS["concurrency"], "WorkerSettings.concurrency"),
        (
            ("worker", "taskTimeLimitSeconds"),
            WORKER_DEFAULTS["task_time_limit_seconds"],
            "WorkerSettings.task_time_limit_seconds",
        ),
        (
            ("worker", "maxDeliveryAttempts"),
            WORKER_DEFAULTS["max_delivery_attempts"],
            "WorkerSettings.max_delivery_attempts",
        ),
        (
            ("worker", "maxTasksPerChild"),
            WORKER_DEFAULTS["max_tasks_per_child"],
            "WorkerSettings.max_tasks_per_child",
        ),
        (
            ("worker", "maxMemoryPerChildMiB"),
            WORKER_DEFAULTS["max_memory_per_child_mib"],
            "WorkerSettings.max_memory_per_child_mib",
        ),
        (
            ("scaling", "pollingIntervalSeconds"),
            scaling.DEFAULT_POLLING_INTERVAL_SECONDS,
            "scaling.DEFAULT_POLLING_INTERVAL_SECONDS",
        ),
        (
            ("scaling", "cooldownSeconds"),
            scaling.DEFAULT_COOLDOWN_SECONDS,
            "scaling.DEFAULT_COOLDOWN_SECONDS",
        ),
        (
            ("scaling", "targetDrainSeconds"),
            scaling.DEFAULT_TARGET_DRAIN_SECONDS,
            "scaling.DEFAULT_TARGET_DRAIN_SECONDS",
        ),
        (("scaling", "tolerance"), scaling.DEFAULT_TOLERANCE, "scaling.DEFAULT_TOLERANCE"),
    ],
)
def test_every_default_stated_elsewhere_equals_the_crds(
    crd_path: tuple[str, ...], elsewhere: Any, where: str
) -> None:
    assert schema.default_at(*crd_path) == elsewhere, f"{where} differs from spec.{'.'.join(crd_path)}"


def test_the_scaling_modules_behavior_defaults_are_the_crds() -> None:
    from_crd = parse_policy({})
    assert from_crd.scale_up == scaling.DEFAULT_SCALE_UP
    assert from_crd.scale_down == scaling.DEFAULT_SCALE_DOWN


def test_defaulting_fills_nested_objects_and_keeps_what_is_set() -> None:
    filled = schema.with_defaults({"scaling": {"maxReplicas": 3}, "worker": {"concurrency": 2}})
    assert filled["scaling"]["maxReplicas"] == 3
    assert filled["scaling"]["minReplicas"] == 0
    assert filled["scaling"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert filled["worker"] == {
        "concurrency": 2,
        "taskTimeLimitSeconds": 300,
        "maxDeliveryAttempts": 5,
        "maxTasksPerChild": 0,
        "maxMemoryPerChildMiB": 0,
    }
    assert "source" not in filled, "objects without a default are not invented"
    with pytest.raises(KeyError, match="no default"):
        schema.default_at("worker", "image")
