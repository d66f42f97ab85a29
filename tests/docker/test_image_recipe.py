"""The Dockerfile, without a Docker engine (none runs here): hadolint, and its install steps replayed.

The build stage's steps — build this project's wheel, install it with the pinned constraints into a fresh
virtual environment — are run for real in a temporary directory, and both entry points must start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_and_pins_its_base() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert text.count("FROM python:3.11.7-slim-bookworm") == 2  # pinned tag, same base in both stages
    assert "-c constraints.txt" in text
    final_stage = text.split("AS runtime", 1)[1]
    assert "pip install" not in final_stage, "no installs (and no build tools) in the final stage"


@pytest.mark.slow  # builds a wheel and installs every pinned dependency into a fresh virtualenv
def test_install_steps_in_a_clean_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(REPO)], check=True, timeout=300
    )
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [*pip, "install", "-c", str(REPO / "constraints.txt"), str(wheel)], check=True, timeout=900
    )
    for command in ("qc-worker", "qc-operator"):
        result = subprocess.run(
            [str(venv / "bin" / command), "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout
    # The wheel carries the three packages and nothing from the development tree.
    names = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import qc_common, qc_operator, qc_worker, sys; print('ok')"],
        capture_output=True,
        text=True,
    )
    assert names.stdout.strip() == "ok", names.stderr
