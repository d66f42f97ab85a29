"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager.

The controller-manager runs the garbage collector (ownerReferences) and the Deployment and ReplicaSet
controllers, so a Deployment gets a ReplicaSet and Pods. Without a node (the default, for the fast tests)
pods stay Pending and the kubelet stand-in (devstack/kubelet.py) plays the kubelet's part. With
`with_node=True` a kube-scheduler runs too, and the node-lifecycle controller, which clears the not-ready
taint a real kubelet registers its node with (devstack/node.py). Authentication is by static tokens (an
admin in `system:masters`) and by ServiceAccount tokens, authorization by RBAC, as in a real cluster.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack import audit, binaries, certificates, netns
from devstack.process import ManagedProcess, free_port

ADMIN_USER = "qc-admin"
FRONT_PROXY_CLIENT = "front-proxy-client"
CERTIFICATE_DAYS = 30  # the stack's own certificates: `make stack-up` may run for days
START_TIMEOUT_SECONDS = 90.0
SERVICE_ACCOUNT_TOKEN_SECONDS = 24 * 3600


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory: Path) -> None:
    """A self-signed serving certificate and the service-account signing key pair.

    The certificate names 127.0.0.1 and the `kubernetes` Service (its ClusterIP and DNS names), where pods'
    in-cluster clients reach the apiserver.
    """
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-keyout",
        str(directory / "serving.key"),
        "-out",
        str(directory / "serving.crt"),
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        f"subjectAltName=IP:127.0.0.1,IP:{netns.API_SERVICE_ADDRESS},"
        "DNS:localhost,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
    )
    _openssl("genrsa", "-out", str(directory / "sa.key"), "2048")
    _openssl("rsa", "-in", str(directory / "sa.key"), "-pubout", "-out", str(directory / "sa.pub"))
    make_front_proxy_certificates(directory)


def make_front_proxy_certificates(directory: Path) -> None:
    """The aggregation layer's front-proxy CA and the client certificate the apiserver proxies with.

    Inert until an APIService names a Service (devstack/keda.py registers KEDA's metrics adapter).
    """
    ca = certificates.make_ca(directory, "front-proxy-ca", days=CERTIFICATE_DAYS)
    certificates.sign(directory, FRONT_PROXY_CLIENT, ca, "clientAuth", days=CERTIFICATE_DAYS)


def write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str, namespace: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": user, "namespace": namespace}}
        ],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@dataclass
class KubeControlPlane:
    """etcd + kube-apiserver + kube-controller-manager sharing one state directory."""

    directory: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    api_port: int = 0
    admin_token: str = ""
    with_node: bool = False  # a real kubelet will join: run kube-scheduler and the node-lifecycle controller
    audit_reads: bool = False  # log every GET and LIST (metadata only) to `audit_log`: who reads what

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.directory / "pki" / "serving.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.directory / "admin.kubeconfig"

    def start(self) -> None:
        needed = [binaries.KUBE_APISERVER, binaries.KUBE_CONTROLLER_MANAGER]
        tools = binaries.ensure_built(*needed, *([binaries.KUBE_SCHEDULER] if self.with_node else []))
        etcd = shutil.which("etcd")
        if etcd is None:
            raise RuntimeError("etcd is not installed: run scripts/bootstrap.sh (Debian package etcd-server)")
        pki = self.directory / "pki"
        make_certificates(pki)
        self.admin_token = subprocess.run(
            ["openssl", "rand", "-hex", "24"], check=True, capture_output=True, text=True
        ).stdout.strip()
        (pki / "tokens.csv").write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')

        etcd_port, etcd_peer_port = free_port(), free_port()
        self._launch(
            "etcd",
            [
                etcd,
                "--name",
                "qc-test",
                "--data-dir",
                str(self.directory / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer_port}",
                "--initial-cluster",
                f"qc-test=http://127.0.0.1:{etcd_peer_port}",
                "--unsafe-no-fsync",
            ],
            lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"),
        )
        self.api_port = free_port()
        self._launch(
            "kube-apiserver",
            [
                str(tools["kube-apiserver"]),
                "--etcd-servers",
                f"http://127.0.0.1:{etcd_port}",
                "--bind-address",
                "127.0.0.1",
                # The `kubernetes` Service's endpoint; the validation refuses a loopback address there.
                "--advertise-address",
                netns.NODE_ADDRESS if self.with_node else "127.0.0.1",
                "--secure-port",
                str(self.api_port),
                "--tls-cert-file",
                str(pki / "serving.crt"),
                "--tls-private-key-file",
                str(pki / "serving.key"),
                "--client-ca-file",
                str(pki / "serving.crt"),
                "--token-auth-file",
                str(pki / "tokens.csv"),
                "--authorization-mode",
                "RBAC",
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                str(pki / "sa.pub"),
                "--service-account-signing-key-file",
                str(pki / "sa.key"),
                "--service-cluster-ip-range",
                netns.SERVICE_CLUSTER_IP_RANGE,
                # No cluster DNS: the apiserver reaches a kubelet (logs, exec) at its node's address.
                "--kubelet-preferred-address-types",
                "InternalIP",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                *_aggregation_flags(pki),
                *(audit.reads_flags(self.directory, self.audit_log) if self.audit_reads else []),
            ],
            lambda: self._readyz(),
        )
        write_kubeconfig(
            self.admin_kubeconfig, self.server, self.ca_file, ADMIN_USER, self.admin_token, "default"
        )
        self._launch(
            "kube-controller-manager",
            [
                str(tools["kube-controller-manager"]),
                *self._component_flags(),
                "--controllers",
                ",".join(_controllers(self.with_node)),
                "--service-account-private-key-file",
                str(pki / "sa.key"),
                "--root-ca-file",
                str(pki / "serving.crt"),
                "--use-service-account-credentials=false",
                "--concurrent-gc-syncs",
                "5",
            ],
            lambda: self._default_service_account_exists(),
        )
        if self.with_node:
            self._launch(
                "kube-scheduler",
                [
                    str(tools["kube-scheduler"]),
                    *self._component_flags(),
                ],
                lambda: True,
            )

    def _component_flags(self) -> list[str]:
        """What kube-controller-manager and kube-scheduler share: the admin identity, loopback, one copy."""
        kubeconfig = str(self.admin_kubeconfig)
        return [
            "--kubeconfig", kubeconfig,
            "--authentication-kubeconfig", kubeconfig,
            "--authorization-kubeconfig", kubeconfig,
            "--bind-address", "127.0.0.1",
            "--secure-port", str(free_port()),
            "--leader-elect=false",
        ]  # fmt: skip

    def _launch(self, name: str, argv: list[str], is_ready: object) -> None:
        process = ManagedProcess(name, argv, self.directory / "logs" / f"{name}.log")
        process.start()
        self.processes.append(process)
        process.wait_ready(is_ready, START_TIMEOUT_SECONDS)  # type: ignore[arg-type]

    def _get(self, path: str) -> bytes:
        return self._request("GET", path)

    def _request(self, method: str, path: str, body: object | None = None) -> bytes:
        """An admin call to the apiserver, without kubectl (the stack must not depend on it)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            self.server + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return bytes(response.read())

    def api(self, method: str, path: str, body: object | None = None) -> bytes:
        """An admin call to the apiserver; returns the raw body."""
        return self._request(method, path, body)

    def _readyz(self) -> bool:
        return self._get("/readyz") == b"ok"

    def _default_service_account_exists(self) -> bool:
        # The controller-manager's service-account controller creates it: proof that its controllers run.
        body = json.loads(self._get("/api/v1/namespaces/default/serviceaccounts/default"))
        return bool(body.get("metadata", {}).get("name") == "default")

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig that acts as ServiceAccount `namespace/name` (which must exist), for RBAC tests."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": SERVICE_ACCOUNT_TOKEN_SECONDS},
        }
        path_ = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        token = str(json.loads(self._request("POST", path_, request))["status"]["token"])
        path = self.directory / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(path, self.server, self.ca_file, f"{namespace}-{name}", token, namespace)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def log_paths(self) -> list[Path]:
        return [p.log_path for p in self.processes]


def _controllers(with_node: bool) -> list[str]:
    """Every default controller but those that need a cloud or allocate node CIDRs (the CNI config does).

    Without a real kubelet the node-lifecycle controller would taint the stand-in's Node and evict its pods.
    """
    disabled = ["nodeipam", "cloud-node-lifecycle", "service-lb-controller"]
    if not with_node:
        disabled.append("nodelifecycle")
    return ["*", *(f"-{name}" for name in disabled)]


def _aggregation_flags(pki: Path) -> list[str]:
    """The aggregation layer (shared/ENVIRONMENT.md, "Real KEDA"): an APIService's backend trusts requests
    that carry the front-proxy client certificate. Service routing (not endpoints) lets an ExternalName
    Service point at a loopback adapter, which Endpoints may not name."""
    return [
        "--requestheader-client-ca-file", str(pki / "front-proxy-ca.crt"),
        "--requestheader-allowed-names", FRONT_PROXY_CLIENT,
        "--requestheader-username-headers", "X-Remote-User",
        "--requestheader-group-headers", "X-Remote-Group",
        "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
        "--proxy-client-cert-file", str(pki / "front-proxy-client.crt"),
        "--proxy-client-key-file", str(pki / "front-proxy-client.key"),
        "--enable-aggregator-routing=false",
    ]  # fmt: skip


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
