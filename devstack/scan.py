"""A configuration scan of the rendered Helm chart and the Dockerfile with checkov, offline.

checkov (PyPI, pinned in tools/checkov/requirements.txt) lives in its own venv, .venv-scan (its pins clash
with ours), made by scripts/bootstrap.sh. `--skip-download` keeps it offline: nothing is fetched from the
vendor's platform (so no severities either: every finding counts, and an accepted one is listed with its
reason in tools/checkov/accepted.yaml). Run by tests/chart/test_config_scan.py (`make scan` runs just that).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devstack import binaries, manifests

CHECKOV = binaries.REPO_ROOT / ".venv-scan" / "bin" / "checkov"
ACCEPTED = binaries.REPO_ROOT / "tools" / "checkov" / "accepted.yaml"
DOCKERFILE = binaries.REPO_ROOT / "Dockerfile"
SCAN_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Finding:
    check_id: str
    check_name: str
    resource: str
    file: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.check_name}: {self.resource} ({self.file})"


def accepted() -> dict[str, str]:
    """Check id -> why its finding is accepted here."""
    entries: dict[str, str] = yaml.safe_load(ACCEPTED.read_text())
    return entries


def render_values(helm: Path, value_sets: dict[str, list[str]], folder: Path) -> list[Path]:
    """One rendered file per named set of `helm template` arguments."""
    paths = []
    for name, extra in value_sets.items():
        command = [str(helm), "template", "qc", str(manifests.CHART), "-n", "qc-system"]
        rendered = subprocess.run(
            [*command, "--kube-version", manifests.KUBE_VERSION, *extra],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        path = folder / f"{name}.yaml"
        path.write_text(rendered)
        paths.append(path)
    return paths


def failed_checks(reports: Any) -> list[Finding]:
    """The failed checks of checkov's JSON output (one report, or a list of them: one per framework)."""
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        for check in report.get("results", {}).get("failed_checks", []):
            findings.append(
                Finding(check["check_id"], check["check_name"], check["resource"], check["file_path"])
            )
    return findings


def scan(helm: Path, value_sets: dict[str, list[str]], folder: Path) -> tuple[list[Finding], int]:
    """Every finding of checkov on the chart rendered with each value set and on the Dockerfile, and how
    many checks passed (so a scan that checked nothing shows)."""
    render_values(helm, value_sets, folder)
    shutil.copy(DOCKERFILE, folder / "Dockerfile")
    if not CHECKOV.exists():
        raise RuntimeError(f"{CHECKOV} is missing: run `make bootstrap`")
    command = [str(CHECKOV), "--directory", str(folder), "--framework", "kubernetes", "dockerfile"]
    result = subprocess.run(
        [*command, "--skip-download", "--output", "json", "--quiet", "--compact"],
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT_SECONDS,
    )
    # checkov exits 1 when a check failed; anything else, or no JSON, is the scanner failing.
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr[-2000:]}")
    reports = json.loads(result.stdout)
    passed = sum(
        report.get("summary", {}).get("passed", 0)
        for report in (reports if isinstance(reports, list) else [reports])
    )
    return failed_checks(reports), passed
