"""The Dockerfile: hadolint, its recipe, and the image built from it (bootstrap: buildah bud) run as pods.

No Docker engine runs here: scripts/bootstrap.sh builds the image from this Dockerfile with buildah on a
locally made base (devstack/image.py) and the local node imports it; both entry points must start in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config

from devstack import image
from devstack.node import Node

REPO = Path(__file__).resolve().parents[2]
IDENTITY = """
import importlib.util, os
candidates = ("qc_common", "qc_operator", "qc_worker", "devstack", "tests")
names = [n for n in candidates if importlib.util.find_spec(n)]
from qc_operator import schema  # the CRD ships in the package: the spec's defaults come from it
assert schema.default_at("worker", "concurrency") == 8
print(os.getuid(), ",".join(names))
"""


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


def run_pod(core: Any, name: str, command: list[str]) -> tuple[str, str]:
    """Run `command` in a pod of the project's image; return its final phase and its log."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": image.PROJECT_IMAGE, "command": command}],
        },
    }
    core.create_namespaced_pod("default", pod)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phase = core.read_namespaced_pod(name, "default").status.phase
        if phase in ("Succeeded", "Failed"):
            return str(phase), str(core.read_namespaced_pod_log(name, "default"))
        time.sleep(0.5)
    raise AssertionError(f"pod {name} did not finish within 120 s")


def test_image_built_from_this_dockerfile_runs_both_entry_points_as_non_root(node: Node) -> None:
    # The archive the node imported is named by the hash of the Dockerfile's build context as it is now.
    assert (image.images_dir() / f"queue-consumer-operator-{image.context_digest()}.tar").exists()
    with config.new_client_from_config(config_file=str(node.kube.admin_kubeconfig)) as api_client:
        core = client.CoreV1Api(api_client)
        suffix = uuid.uuid4().hex[:6]
        for command in ("qc-worker", "qc-operator"):
            phase, log = run_pod(core, f"{command}-{suffix}", [command, "--help"])
            assert phase == "Succeeded", log
            assert "usage:" in log
        phase, log = run_pod(core, f"id-{suffix}", ["python", "-c", IDENTITY])
        assert phase == "Succeeded", log
        uid, packages = log.split()
        assert uid == "10001"  # the Dockerfile's USER, with no securityContext asking for it
        assert packages == "qc_common,qc_operator,qc_worker"  # and nothing from the development tree
