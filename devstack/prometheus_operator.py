"""The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule), from its pinned Go module.

The version is pinned in tools/prometheus-operator/go.mod; `go mod download -json` fetches the module zip
into the Go module cache (once; offline afterwards) and the CRD manifests are read from the module's
example/prometheus-operator-crd/. The chart tests install them on the local apiserver so that the chart's
monitors and rules meet the real schema validation (tests/chart/test_prometheus_operator_crds.py).
Run as `python -m devstack.prometheus_operator` (bootstrap does) to download the module ahead of the tests.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from devstack import binaries
from devstack.polling import wait_until

MODULE = "github.com/prometheus-operator/prometheus-operator"
TOOLS_DIR = binaries.REPO_ROOT / "tools" / "prometheus-operator"
# The kinds the chart renders (templates/monitoring.yaml), by their CRD file's plural.
CHART_KINDS = ("servicemonitors", "podmonitors", "prometheusrules")
ESTABLISHED_SECONDS = 30


def module_dir() -> Path:
    """The pinned module's files in the Go module cache (downloaded on first use)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    result = subprocess.run(
        [go, "mod", "download", "-json", MODULE],
        cwd=TOOLS_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"go mod download {MODULE} failed: {result.stdout}{result.stderr}")
    return Path(json.loads(result.stdout)["Dir"])


def crds(plurals: tuple[str, ...] = CHART_KINDS) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of the given kinds, as the pinned release ships them."""
    folder = module_dir() / "example" / "prometheus-operator-crd"
    documents = []
    for plural in plurals:
        document: dict[str, Any] = yaml.safe_load(
            (folder / f"monitoring.coreos.com_{plural}.yaml").read_text()
        )
        documents.append(document)
    return documents


def install(admin: client.ApiClient, plurals: tuple[str, ...] = CHART_KINDS) -> list[str]:
    """Create (or replace) the CRDs on the apiserver and wait until each is Established; their names."""
    # Plain dicts, as read from the files: the typed client models are not worth a round trip here.
    api: Any = client.ApiextensionsV1Api(admin)
    names: list[str] = []
    for crd in crds(plurals):
        name = crd["metadata"]["name"]
        try:
            api.create_custom_resource_definition(crd)
        except client.ApiException as error:
            if error.status != 409:
                raise
            existing = api.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = existing.metadata.resource_version
            api.replace_custom_resource_definition(name, crd)
        names.append(name)

    def established(name: str) -> bool:
        conditions = api.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for name in names:
        wait_until(functools.partial(established, name), ESTABLISHED_SECONDS, f"CRD {name} established")
    return names


def main() -> int:
    print(f"{MODULE}: {module_dir()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
