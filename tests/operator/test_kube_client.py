"""`qc_operator.kube.make_api_client`: the client the operator's own calls go through names itself."""

from __future__ import annotations

from pathlib import Path

import yaml

from qc_operator import kube


def test_the_operators_api_client_names_itself_in_its_user_agent(tmp_path: Path) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    api_client = kube.make_api_client(str(path))
    assert api_client.user_agent == kube.USER_AGENT
    assert kube.USER_AGENT.startswith("qc-operator/")
    assert kube.USER_AGENT != "qc-operator/unknown"  # installed: the package's version
