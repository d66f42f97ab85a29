"""A configuration scan (checkov, offline) of the chart rendered with every value set the tests install or
render, and of the Dockerfile: no finding but the accepted ones (tools/checkov/accepted.yaml), each with its
reason, and no accepted entry that the scan no longer finds. `make scan` runs this module alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import e2e, scan
from tests.chart.test_chart_renders_and_validates import VALUE_SETS

# Beyond the rendering tests' sets: what the install tests and the end-to-end run pass to helm.
SCANNED = {
    **VALUE_SETS,
    "verbose": ["--set", "operator.verbose=true"],
    "e2e-local-image": [arg for value in e2e.CHART_IMAGE_VALUES for arg in ("--set", value)],
}


@pytest.fixture(scope="module")
def findings(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> list[scan.Finding]:
    found, passed = scan.scan(helm_binary, SCANNED, tmp_path_factory.mktemp("scan"))
    # Each value set's objects and the Dockerfile were checked (about 100 checks each): not an empty scan.
    assert passed > 100 * len(SCANNED), passed
    return found


def test_no_finding_but_the_accepted_ones(findings: list[scan.Finding]) -> None:
    accepted = scan.accepted()
    unexpected = [str(f) for f in findings if f.check_id not in accepted]
    assert not unexpected, "fix these, or accept one in tools/checkov/accepted.yaml with its reason:\n" + (
        "\n".join(unexpected)
    )


def test_every_accepted_finding_has_a_reason_and_still_occurs(findings: list[scan.Finding]) -> None:
    accepted = scan.accepted()
    for check_id, reason in accepted.items():
        assert len(reason.split()) >= 10, f"{check_id}: say why it is accepted"
    stale = set(accepted) - {f.check_id for f in findings}
    assert not stale, (
        f"accepted but no longer found, remove from tools/checkov/accepted.yaml: {sorted(stale)}"
    )


def test_the_dockerfile_was_scanned(findings: list[scan.Finding]) -> None:
    assert any(f.file.endswith("Dockerfile") for f in findings), (
        "the Dockerfile's accepted finding is missing"
    )
