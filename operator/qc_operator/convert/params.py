"""Where a KEDA trigger parameter comes from, resolved the way KEDA resolves it, down to what a
QueueConsumer can name: a literal value, or a Secret key.

KEDA reads a parameter from the trigger's metadata (`host`), from an environment variable of the target's
container (`hostFromEnv`), or from the trigger's (Cluster)TriggerAuthentication: `secretTargetRef` (a Secret
key), `env` (a container variable), `podIdentity`, and stores we cannot reach (Vault, Key Vault, config
maps...). The QueueConsumer only takes Secret keys for anything secret, so a variable is followed to its
`secretKeyRef`. Pure: the objects come in as dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qc_operator.convert.model import SecretRef

# TriggerAuthentication fields the QueueConsumer has no counterpart for (KEDA's authentication providers).
UNREACHABLE_AUTH_FIELDS = (
    "configMapTargetRef",
    "hashiCorpVault",
    "azureKeyVault",
    "awsSecretManager",
    "gcpSecretManager",
    "boundServiceAccountToken",
    "filePath",
)


@dataclass(frozen=True)
class TriggerParams:
    """One trigger's parameters: its metadata, its authentication's spec and the container KEDA reads
    environment variables from (`scaleTargetRef.envSourceContainerName`, else the first)."""

    metadata: Mapping[str, Any]
    auth: Mapping[str, Any]  # the (Cluster)TriggerAuthentication's spec; {} without one
    auth_name: str  # "TriggerAuthentication ns/name" for messages; "" without one
    container: Mapping[str, Any]

    def _env(self, variable: str) -> Mapping[str, Any] | None:
        for entry in self.container.get("env") or []:
            if isinstance(entry, Mapping) and entry.get("name") == variable:
                return entry
        return None

    def _auth_entries(self, field: str, parameter: str) -> list[Mapping[str, Any]]:
        entries = self.auth.get(field) or []
        return [e for e in entries if isinstance(e, Mapping) and e.get("parameter") == parameter]

    def _variables(self, parameter: str) -> list[str]:
        """The container variables that carry `parameter`: `<parameter>FromEnv`, then the auth's `env`."""
        names = (
            [str(self.metadata[f"{parameter}FromEnv"])] if self.metadata.get(f"{parameter}FromEnv") else []
        )
        return names + [str(e["name"]) for e in self._auth_entries("env", parameter) if e.get("name")]

    def literal(self, parameter: str) -> str | None:
        """The value written out in the metadata or in a container variable's `value`."""
        if self.metadata.get(parameter) not in (None, ""):
            return str(self.metadata[parameter])
        for variable in self._variables(parameter):
            entry = self._env(variable)
            if entry is not None and entry.get("value") is not None:
                return str(entry["value"])
        return None

    def secret(self, parameter: str) -> SecretRef | None:
        """The Secret key holding `parameter`: the auth's `secretTargetRef`, or a container variable's
        `valueFrom.secretKeyRef` (KEDA's auth wins over the metadata, as in KEDA)."""
        for entry in self._auth_entries("secretTargetRef", parameter):
            if entry.get("name") and entry.get("key"):
                return SecretRef(str(entry["name"]), str(entry["key"]))
        for variable in self._variables(parameter):
            found = self._env(variable)
            value_from = found.get("valueFrom") if found is not None else None
            ref = value_from.get("secretKeyRef") if isinstance(value_from, Mapping) else None
            if isinstance(ref, Mapping) and ref.get("name") and ref.get("key"):
                return SecretRef(str(ref["name"]), str(ref["key"]))
        return None

    def given(self, parameter: str) -> bool:
        """Set anywhere KEDA would look, whether or not we can follow it."""
        if self.metadata.get(parameter) not in (None, "") or self._variables(parameter):
            return True
        return any(
            self._auth_entries(field, parameter) for field in ("secretTargetRef", *UNREACHABLE_AUTH_FIELDS)
        )

    def where(self, parameter: str) -> str:
        """Where `parameter` is set, for a message that says why it cannot be followed."""
        if self.metadata.get(parameter) not in (None, ""):
            return f"{parameter} is written in the trigger's metadata"
        for variable in self._variables(parameter):
            entry = self._env(variable)
            if entry is None:
                return f"{parameter} comes from the container variable {variable}, which the Deployment lacks"
            return f"{parameter} comes from the container variable {variable}, which is not from a Secret key"
        for field in UNREACHABLE_AUTH_FIELDS:
            if self._auth_entries(field, parameter):
                return f"{parameter} comes from {self.auth_name}'s {field}"
        return f"{parameter} is not set"

    @property
    def pod_identity(self) -> str | None:
        """The auth's `podIdentity.provider` (gcp, azure-workload, aws...), None without one."""
        identity = self.auth.get("podIdentity")
        provider = identity.get("provider") if isinstance(identity, Mapping) else None
        return str(provider) if provider and provider != "none" else None

    def auth_parameters(self) -> set[str]:
        """Every parameter the auth provides."""
        found: set[str] = set()
        for field in ("secretTargetRef", "env", *UNREACHABLE_AUTH_FIELDS):
            entries = self.auth.get(field)
            if isinstance(entries, list):
                found.update(
                    str(e["parameter"]) for e in entries if isinstance(e, Mapping) and e.get("parameter")
                )
        return found

    def unknown_metadata_notes(self, trigger_type: str, known: set[str]) -> list[str]:
        """A note for each metadata key the conversion does not read (`<known>FromEnv` counts as known)."""
        return [
            f"{trigger_type} trigger {name}={self.metadata[name]!r}: not carried over"
            for name in sorted(self.metadata)
            if name not in known and name.removesuffix("FromEnv") not in known
        ]

    def unused_auth_notes(self, used: set[str]) -> list[str]:
        """A note for each parameter the auth gives that the QueueConsumer does not take."""
        return [
            f"{self.auth_name} gives {parameter!r}, which has no equivalent here: not carried over"
            for parameter in sorted(self.auth_parameters() - used)
        ]
