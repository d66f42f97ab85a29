"""Go-built binaries of the local stack (the Kubernetes control plane, the kubelet, helm), built once, cached.

Versions are pinned in one place each: `tools/kube/go.mod` and `tools/helm/go.mod`. Binaries land in
`$QC_CACHE_DIR/bin/<module>@<version>/` (default `~/.cache/queue-consumer-operator`, outside the work tree,
so fresh clones on the same machine reuse them); a build is skipped when the binary is there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_SECONDS = 40 * 60


@dataclass(frozen=True)
class GoTool:
    binary: str
    package: str
    module: str
    tools_dir: Path
    # `-X` flags stamping the version, without which a kubelet reports its node as v0.0.0.
    version_variable: str = ""

    @property
    def version(self) -> str:
        go_mod = (self.tools_dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)}\s+(v\S+)", go_mod, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"{self.module} is not pinned in {self.tools_dir / 'go.mod'}")
        return match.group(1)


def _kube(binary: str) -> GoTool:
    return GoTool(
        binary,
        f"k8s.io/kubernetes/cmd/{binary}",
        "k8s.io/kubernetes",
        REPO_ROOT / "tools/kube",
        "k8s.io/component-base/version.gitVersion",
    )


KUBE_APISERVER = _kube("kube-apiserver")
KUBE_CONTROLLER_MANAGER = _kube("kube-controller-manager")
KUBE_SCHEDULER = _kube("kube-scheduler")
KUBELET = _kube("kubelet")
HELM = GoTool("helm", "helm.sh/helm/v3/cmd/helm", "helm.sh/helm/v3", REPO_ROOT / "tools/helm")
ALL_TOOLS = (KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KUBELET, HELM)


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "queue-consumer-operator"
    return Path(os.environ.get("QC_CACHE_DIR", default))


def binary_path(tool: GoTool) -> Path:
    module_dir = tool.module.replace("/", "_")
    return cache_dir() / "bin" / f"{module_dir}@{tool.version}" / tool.binary


def ensure_built(*tools: GoTool) -> dict[str, Path]:
    """Build the tools that are missing (one `go build` per go.mod) and return their paths by binary name."""
    missing_by_dir: dict[Path, list[GoTool]] = {}
    for tool in tools:
        if not binary_path(tool).exists():
            missing_by_dir.setdefault(tool.tools_dir, []).append(tool)
    go = shutil.which("go") or "/usr/local/go/bin/go"
    for tools_dir, missing in missing_by_dir.items():
        out_dir = binary_path(missing[0]).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"building {', '.join(t.binary for t in missing)} into {out_dir} (cached afterwards)", flush=True
        )
        ldflags = "-s -w"
        if missing[0].version_variable:
            ldflags += f" -X {missing[0].version_variable}={missing[0].version}"
        subprocess.run(
            [go, "build", "-ldflags", ldflags, "-o", f"{out_dir}/", *(t.package for t in missing)],
            cwd=tools_dir,
            check=True,
            timeout=BUILD_TIMEOUT_SECONDS,
        )
    return {tool.binary: binary_path(tool) for tool in tools}


if __name__ == "__main__":
    for name, path in ensure_built(*ALL_TOOLS).items():
        print(f"{name}: {path}")
