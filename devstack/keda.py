"""The real KEDA (operator + metrics adapter) against the local apiserver, for `make bench-keda`.

Built like the Kubernetes binaries (devstack/binaries.py): KEDA is pinned in `tools/keda/go.mod`, its
`cmd/operator` and `cmd/adapter` land in `$QC_CACHE_DIR/bin/github.com_kedacore_keda_v2@<version>/`.
Both run as processes on the stack's loopback, not as pods; kube-controller-manager's own HPA controller
scales from KEDA's external metric through the aggregation layer the apiserver always has
(devstack/kube.py `_aggregation_flags`). The walls met on the way are in shared/ENVIRONMENT.md ("Real
KEDA"): the APIService reaches the loopback adapter through an ExternalName Service (Endpoints may not name
127.0.0.1), and one CA signs the certificate both KEDA processes serve and authenticate with.

KEDA runs with its own RBAC, not as admin: the ServiceAccount, ClusterRoles, Roles and bindings of its
`config/` (service_account, rbac, metrics-server), applied from the module cache as a user installing KEDA
would, and both processes use a kubeconfig of that ServiceAccount (its token). The installer's part (CRDs,
the APIService, the Service) is applied as admin. KEDA's binding of its external-metrics reader to the
HPA controller's ServiceAccount is applied too but inert here: kube-controller-manager runs on its own
credentials (`--use-service-account-credentials=false`, devstack/kube.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack import binaries, certificates, netns
from devstack.kube import CERTIFICATE_DAYS, KubeControlPlane
from devstack.process import ManagedProcess, free_port

KEDA_DIR = binaries.REPO_ROOT / "tools/keda"
MODULE = "github.com/kedacore/keda/v2"
NAMESPACE = "keda"
OPERATOR_SERVICE = "keda-operator"
ADAPTER_SERVICE = "keda-metrics-apiserver"
EXTERNAL_METRICS_GROUP, EXTERNAL_METRICS_VERSION = "external.metrics.k8s.io", "v1beta1"
OPERATOR = binaries.GoTool("operator", f"{MODULE}/cmd/operator", MODULE, KEDA_DIR)
ADAPTER = binaries.GoTool("adapter", f"{MODULE}/cmd/adapter", MODULE, KEDA_DIR)
START_TIMEOUT_SECONDS = 120.0
SERVICE_ACCOUNT = "keda-operator"  # both KEDA processes run as it (config/metrics-server/deployment.yaml)
# KEDA's own manifests for its identity and permissions, under its module's config/.
RBAC_MANIFESTS = (
    "service_account/service_account.yaml",
    "rbac/role.yaml",
    "rbac/role_binding.yaml",
    "rbac/aggregate_cluster_roles.yaml",
    "metrics-server/role.yaml",
    "metrics-server/role_binding.yaml",
)


def ensure_built() -> dict[str, Path]:
    """Build KEDA's operator and adapter if they are not cached (~7 min cold on 2 cores, 20 s warm)."""
    missing = [tool for tool in (OPERATOR, ADAPTER) if not binaries.binary_path(tool).exists()]
    if missing:
        out_dir = binaries.binary_path(OPERATOR).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"building KEDA {OPERATOR.version} into {out_dir} (cached afterwards)", flush=True)
        # KEDA's own release stamps the version without the "v".
        ldflags = f"-s -w -X={MODULE}/version.Version={OPERATOR.version.removeprefix('v')}"
        subprocess.run(
            # From inside the stack's network namespace the module proxy is reached from the host's.
            netns.host_command(
                [_go(), "build", "-ldflags", ldflags, "-o", f"{out_dir}/", *(t.package for t in missing)]
            ),
            cwd=KEDA_DIR,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
            check=True,
            timeout=binaries.BUILD_TIMEOUT_SECONDS,
        )
    return {tool.binary: binaries.binary_path(tool) for tool in (OPERATOR, ADAPTER)}


def _go() -> str:
    return shutil.which("go") or "/usr/local/go/bin/go"


def module_dir() -> Path:
    """Where the Go module cache holds KEDA's source (its CRDs are in config/crd/bases); read offline."""
    cache = subprocess.run([_go(), "env", "GOMODCACHE"], check=True, capture_output=True, text=True)
    return Path(cache.stdout.strip()) / f"{MODULE}@{OPERATOR.version}"


def make_certificates(directory: Path) -> None:
    """ca.crt, tls.crt, tls.key (the names KEDA reads from --cert-dir): one certificate for serving and
    for the adapter's gRPC client, naming loopback and the Services the apiserver checks it against."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = certificates.make_ca(directory, "ca", days=CERTIFICATE_DAYS)
    names = [
        f"DNS:{service}.{NAMESPACE}.{suffix}"
        for service in (OPERATOR_SERVICE, ADAPTER_SERVICE)
        for suffix in ("svc", "svc.cluster.local")
    ]
    certificates.sign(
        directory,
        "tls",
        ca,
        "serverAuth,clientAuth",
        f"subjectAltName=IP:127.0.0.1,DNS:localhost,{','.join(names)}",
        common_name=OPERATOR_SERVICE,
        days=CERTIFICATE_DAYS,
    )


@dataclass
class Keda:
    """KEDA's CRDs, operator and metrics adapter, registered as the cluster's external metrics API."""

    directory: Path
    kube: KubeControlPlane
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self) -> None:
        tools = ensure_built()
        certs = self.directory / "certs"
        make_certificates(certs)
        self._apply_crds()
        self._create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        self._apply_rbac()
        kubeconfig = str(self.kube.service_account_kubeconfig(NAMESPACE, SERVICE_ACCOUNT))
        env = {
            "KUBECONFIG": kubeconfig,
            "WATCH_NAMESPACE": "",
            "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        }
        grpc_port, health_port = free_port(), free_port()
        self._launch(
            "keda-operator",
            [
                str(tools["operator"]),
                "--leader-elect=false",
                "--enable-cert-rotation=false",
                f"--cert-dir={certs}",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{health_port}",
                f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
                "--enable-webhook-patching=false",
                "--enable-apiservice-patching=false",
            ],
            env,
            lambda: _http_ok(f"http://127.0.0.1:{health_port}/readyz"),
        )
        adapter_port = free_port()
        self._launch(
            "keda-metrics-adapter",
            [
                str(tools["adapter"]),
                "--bind-address=127.0.0.1",
                f"--secure-port={adapter_port}",
                f"--cert-dir={certs}",
                f"--tls-cert-file={certs / 'tls.crt'}",
                f"--tls-private-key-file={certs / 'tls.key'}",
                f"--lister-kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--metrics-service-address=127.0.0.1:{grpc_port}",
                # Its own /metrics listener binds every interface (no flag for the address): loopback
                # only is ever sent to it.
                f"--port={free_port()}",
            ],
            env,
            lambda: _https_ok(f"https://127.0.0.1:{adapter_port}/readyz", certs / "ca.crt"),
        )
        self._register_api(adapter_port, (certs / "ca.crt").read_bytes())
        self.processes[-1].wait_ready(self._api_available, START_TIMEOUT_SECONDS)

    def _launch(self, name: str, argv: list[str], env: dict[str, str], is_ready: Any) -> None:
        process = ManagedProcess(name, argv, self.directory / "logs" / f"{name}.log", env)
        process.start()
        self.processes.append(process)
        process.wait_ready(is_ready, START_TIMEOUT_SECONDS)

    def _create(self, body: dict[str, Any]) -> None:
        kind, name = body["kind"], body["metadata"]["name"]
        namespace = body["metadata"].get("namespace", NAMESPACE)
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        paths = {
            "Namespace": "/api/v1/namespaces",
            "Service": f"/api/v1/namespaces/{namespace}/services",
            "ServiceAccount": f"/api/v1/namespaces/{namespace}/serviceaccounts",
            "Role": f"{rbac}/namespaces/{namespace}/roles",
            "RoleBinding": f"{rbac}/namespaces/{namespace}/rolebindings",
            "ClusterRole": f"{rbac}/clusterroles",
            "ClusterRoleBinding": f"{rbac}/clusterrolebindings",
            "APIService": "/apis/apiregistration.k8s.io/v1/apiservices",
            "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        }
        try:
            self.kube.api("POST", paths[kind], body)
        except urllib.error.HTTPError as error:
            if error.code != 409:
                raise RuntimeError(f"creating {kind} {name}: {error.read().decode()}") from error

    def _apply_crds(self) -> None:
        for path in sorted((module_dir() / "config/crd/bases").glob("*.yaml")):
            self._create(yaml.safe_load(path.read_text()))

    def _apply_rbac(self) -> None:
        """KEDA's ServiceAccount and its (Cluster)Roles and bindings, as its config/ ships them."""
        for manifest in RBAC_MANIFESTS:
            for body in yaml.safe_load_all((module_dir() / "config" / manifest).read_text()):
                if body:
                    self._create(body)

    def _register_api(self, adapter_port: int, ca_bundle: bytes) -> None:
        """The ExternalName Service to loopback and the APIService the HPA controller reads through."""
        port = {"name": "https", "port": adapter_port, "protocol": "TCP"}
        self._create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": ADAPTER_SERVICE, "namespace": NAMESPACE},
                "spec": {"type": "ExternalName", "externalName": "127.0.0.1", "ports": [port]},
            }
        )
        self._create(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": f"{EXTERNAL_METRICS_VERSION}.{EXTERNAL_METRICS_GROUP}"},
                "spec": {
                    "group": EXTERNAL_METRICS_GROUP,
                    "version": EXTERNAL_METRICS_VERSION,
                    "service": {"name": ADAPTER_SERVICE, "namespace": NAMESPACE, "port": adapter_port},
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            }
        )

    def _api_available(self) -> bool:
        name = f"{EXTERNAL_METRICS_VERSION}.{EXTERNAL_METRICS_GROUP}"
        body = json.loads(self.kube.api("GET", f"/apis/apiregistration.k8s.io/v1/apiservices/{name}"))
        conditions = {c["type"]: c["status"] for c in body.get("status", {}).get("conditions", [])}
        return conditions.get("Available") == "True"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def log_paths(self) -> list[Path]:
        return [p.log_path for p in self.processes]


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _https_ok(url: str, ca_file: Path) -> bool:
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        return bool(response.status == 200)


if __name__ == "__main__":
    for name, path in ensure_built().items():
        print(f"{name}: {path}")
