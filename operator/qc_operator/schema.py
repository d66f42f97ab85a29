"""The QueueConsumer CRD's schema as data: the one place the spec's defaults are written down.

The API server fills every `default` of the schema before the operator sees an object; `with_defaults`
does the same for specs that never went through an API server (the simulator, unit tests, `parse` of a
partial spec), so `spec.parse` never needs a default of its own. No I/O beyond reading the packaged file.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml

CRD_RESOURCE = "crd/queueconsumers.yaml"


@functools.cache
def crd() -> dict[str, Any]:
    """The CustomResourceDefinition shipped in this package (the chart links to the same file)."""
    text = resources.files("qc_operator").joinpath(CRD_RESOURCE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of `spec` in the served version."""
    version = crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _fill(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: a missing property with a default gets a copy of
    it, then defaults apply inside every object and array element present (defaults included)."""
    if isinstance(value, dict) and "properties" in schema:
        filled = dict(value)
        for name, child in schema["properties"].items():
            if name not in filled and "default" in child:
                filled[name] = copy.deepcopy(child["default"])
            if name in filled:
                filled[name] = _fill(filled[name], child)
        return filled
    if isinstance(value, list) and "items" in schema:
        return [_fill(item, schema["items"]) for item in value]
    return value


def with_defaults(raw_spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of `raw_spec` with the schema's defaults filled in (the input is not changed)."""
    filled: dict[str, Any] = _fill(copy.deepcopy(raw_spec), spec_schema())
    return filled


def default_at(*path: str) -> Any:
    """The schema's default of the field at `path` under `spec`, e.g. default_at("worker", "concurrency")."""
    schema = spec_schema()
    for name in path:
        schema = schema["properties"][name]
    if "default" not in schema:
        raise KeyError(f"spec.{'.'.join(path)} has no default in the CRD")
    return copy.deepcopy(schema["default"])
