"""A real Kubernetes node inside the stack's network namespace: containerd + runc, CNI bridge, a kubelet.

Invoked by the `node` fixture (devstack/fixtures.py) and by `python -m devstack up`; its control plane is a
`KubeControlPlane(with_node=True)` started in the same namespace (devstack/netns.py). Pods run the images
of devstack/image.py, imported into this node's own containerd (no registry can be reached). Every path
the node writes is under its directory, except what the kubelet changes on the host with no switch to
stop it: a few sysctls (recorded before, restored at `stop`) and symlinks in /var/log/containers.
Containers get their cgroups under a root named after the namespace, so two stacks never meet there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack import binaries, image, netns
from devstack.kube import KubeControlPlane
from devstack.process import ManagedProcess, free_port, stop_process_group

NODE_NAME = "qc-node"
CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_MOUNT = Path("/sys/fs/cgroup")
# Host settings the kubelet sets at start (pkg/kubelet/cm: setupKernelTunables) and never puts back.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
HOST_CONTAINER_LOGS = Path("/var/log/containers")
READY_TIMEOUT_SECONDS = 120.0
DRAIN_TIMEOUT_SECONDS = 30.0


class NodeUnavailable(RuntimeError):
    """This host cannot run the node; the message names what is missing."""


def missing_requirements() -> list[str]:
    """What this host lacks to run real pods (empty when nothing is missing)."""
    missing = [
        f"{tool} (Debian package {package})"
        for tool, package in (
            ("containerd", "containerd"),
            ("ctr", "containerd"),
            ("runc", "runc"),
            ("iptables", "iptables"),
            ("ip", "iproute2"),
            ("buildah", "buildah"),
            ("mmdebstrap", "mmdebstrap"),
            ("gcc", "gcc"),
        )
        if shutil.which(tool) is None
    ]
    missing += [
        f"{CNI_BIN_DIR / p} (Debian package containernetworking-plugins)"
        for p in ("bridge", "host-local", "loopback")
        if not (CNI_BIN_DIR / p).exists()
    ]
    if not (CGROUP_MOUNT / "memory").is_dir() and not (CGROUP_MOUNT / "cgroup.controllers").exists():
        missing.append("the memory cgroup controller (/sys/fs/cgroup/memory)")
    if os.geteuid() != 0:
        missing.append("root (containers, cgroups and network namespaces need it)")
    if netns.current() is None:
        missing.append("the stack's network namespace (devstack.netns.create + enter, done by the fixtures)")
    return missing


def containerd_config(directory: Path) -> str:
    """containerd 1.6 settings for this machine (the walls are in shared/ENVIRONMENT.md, "Real pods")."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{directory}/root"
state = "{directory}/state"
[grpc]
  address = "{directory}/containerd.sock"
[ttrpc]
  address = "{directory}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{directory}/opt"
[{cri}]
  sandbox_image = "{image.PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  # runc cannot write oom_score_adj here (no CAP_SYS_RESOURCE in this VM's sandbox) and no AppArmor runs.
  restrict_oom_score_adj = true
  disable_apparmor = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{directory}/net.d"
"""


def cni_config(ipam_dir: Path) -> dict[str, Any]:
    """Pods on the node's bridge, the node's address as their gateway, nothing masqueraded."""
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": netns.POD_SUBNET, "gateway": netns.NODE_ADDRESS}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(ipam_dir),
    }
    bridge = {"type": "bridge", "bridge": netns.NODE_BRIDGE, "isGateway": True, "ipMasq": False, "ipam": ipam}
    return {"cniVersion": "1.0.0", "name": "qc-pods", "plugins": [bridge]}


def kubelet_config(
    directory: Path, containerd_socket: Path, cgroup_root: str, healthz_port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": False,
        "readOnlyPort": 0,
        "makeIPTablesUtilChains": False,
        "address": netns.NODE_ADDRESS,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        # Reachable only inside the stack's namespace; the apiserver calls it for logs and exec.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(directory / "pod-logs"),
        "resolvConf": "",
        # Images cannot be pulled again here: never collect them, never evict for a busy disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
    }


@dataclass
class Node:
    """containerd + kubelet joined to `kube`; `stop()` puts back what the kubelet changed on the host."""

    directory: Path
    kube: KubeControlPlane
    processes: list[ManagedProcess] = field(default_factory=list)
    saved_sysctls: dict[str, str] = field(default_factory=dict)
    cgroup_root: str = ""
    netns_before_start: set[Path] = field(default_factory=set)

    @property
    def containerd_socket(self) -> Path:
        return self.directory / "containerd" / "containerd.sock"

    def start(self) -> None:
        missing = missing_requirements()
        if missing:
            raise NodeUnavailable("this host cannot run real pods; missing: " + "; ".join(missing))
        archives = image.ensure_all()
        self.netns_before_start = set(netns.NETNS_DIR.glob("cni-*"))
        netns.forward_api_service(self.kube.api_port)
        self._start_containerd(archives)
        self.cgroup_root = f"/{netns.current()}"
        _make_cgroup_root(self.cgroup_root)
        self.saved_sysctls = {key: _read_sysctl(key) for key in KUBELET_SYSCTLS}
        self._start_kubelet()

    def _start_containerd(self, archives: list[Path]) -> None:
        directory = self.directory / "containerd"
        (directory / "net.d").mkdir(parents=True, exist_ok=True)
        (directory / "config.toml").write_text(containerd_config(directory))
        (directory / "net.d" / "10-qc-pods.conflist").write_text(json.dumps(cni_config(directory / "ipam")))
        process = ManagedProcess(
            "containerd",
            ["containerd", "--config", str(directory / "config.toml")],
            self.directory / "logs" / "containerd.log",
        )
        process.start()
        self.processes.append(process)
        process.wait_ready(lambda: self.ctr("version").returncode == 0, READY_TIMEOUT_SECONDS)
        for archive in archives:
            result = self.ctr("images", "import", str(archive))
            if result.returncode != 0:
                raise NodeUnavailable(f"containerd could not import {archive}: {result.stderr.strip()}")

    def _start_kubelet(self) -> None:
        kubelet_dir = self.directory / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        config = kubelet_config(self.directory, self.containerd_socket, self.cgroup_root, free_port())
        (kubelet_dir / "config.yaml").write_text(yaml.safe_dump(config))
        kubelet = binaries.ensure_built(binaries.KUBELET)["kubelet"]
        process = ManagedProcess(
            "kubelet",
            [
                str(kubelet),
                "--config",
                str(kubelet_dir / "config.yaml"),
                "--kubeconfig",
                str(self.kube.admin_kubeconfig),
                "--root-dir",
                str(kubelet_dir / "root"),
                "--cert-dir",
                str(kubelet_dir / "pki"),
                "--hostname-override",
                NODE_NAME,
                "--node-ip",
                netns.NODE_ADDRESS,
                "--v",
                "1",
            ],
            self.directory / "logs" / "kubelet.log",
        )
        process.start()
        self.processes.append(process)
        process.wait_ready(self.is_ready, READY_TIMEOUT_SECONDS)

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    def is_ready(self) -> bool:
        """The Node reports Ready and the node-lifecycle controller has lifted the not-ready taint."""
        node = json.loads(self.kube.api("GET", f"/api/v1/nodes/{NODE_NAME}"))
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        taints = [t["key"] for t in node.get("spec", {}).get("taints", [])]
        return conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints

    def stop(self, detached_pids: list[int] | None = None) -> None:
        """Stop every pod, the kubelet and containerd; put back what the kubelet changed on the host.

        `detached_pids`: the kubelet's and containerd's process groups when another process started them
        (`make stack-up`, then `make stack-down`).
        """
        pod_netns = self._pod_network_namespaces()
        with contextlib.suppress(Exception):
            self._delete_all_pods(pod_netns)
        for process in reversed(self.processes):  # the kubelet, then containerd
            process.stop()
        self.processes.clear()
        for pid in reversed(detached_pids or []):
            stop_process_group(pid)
        if self.cgroup_root:
            _kill_cgroup(self.cgroup_root)
        _kill_shims(self.containerd_socket)
        _unmount_under(self.directory)
        if self.cgroup_root:
            _remove_cgroup(self.cgroup_root)
        for key, value in self.saved_sysctls.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", key).write_text(value)
        self.saved_sysctls.clear()
        _remove_log_links(self.directory)
        # Left behind only when containerd went before it could remove them: ours, and any made since this
        # node started that no process is in any more.
        since_start = set(netns.NETNS_DIR.glob("cni-*")) - self.netns_before_start
        for path in {*pod_netns, *(p for p in since_start if not _netns_in_use(p.name))}:
            if path.exists():
                subprocess.run(["umount", str(path)], capture_output=True, check=False)
                path.unlink(missing_ok=True)

    def _pod_network_namespaces(self) -> list[Path]:
        """The network namespaces containerd made for this node's pods (/run/netns/cni-...)."""
        paths = []
        listing = self.ctr("containers", "ls", "-q") if self.containerd_socket.exists() else None
        for container_id in listing.stdout.split() if listing and listing.returncode == 0 else []:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                spec = json.loads(self.ctr("containers", "info", container_id).stdout)["Spec"]
                # Sandboxes name theirs (/var/run/netns/cni-...); their containers join them by /proc path.
                paths += [
                    Path(n["path"])
                    for n in spec["linux"]["namespaces"]
                    if n["type"] == "network" and "/netns/" in n.get("path", "")
                ]
        return paths

    def _delete_all_pods(self, pod_netns: list[Path]) -> None:
        """Let the kubelet stop every pod, so containerd tears their network namespaces down itself."""
        # Cordoned first: the controllers outlive the node (its control plane stops after it), and the pods
        # of a Deployment left behind would be replaced as fast as they go, holding the wait below to its
        # timeout (30 s at the end of every session that left one).
        with contextlib.suppress(Exception):
            node = json.loads(self.kube.api("GET", f"/api/v1/nodes/{NODE_NAME}"))
            node["spec"]["unschedulable"] = True
            self.kube.api("PUT", f"/api/v1/nodes/{NODE_NAME}", node)
        pods = json.loads(self.kube.api("GET", f"/api/v1/pods?fieldSelector=spec.nodeName={NODE_NAME}"))
        for pod in pods["items"]:
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}?gracePeriodSeconds=0"
            with contextlib.suppress(Exception):
                self.kube.api("DELETE", path)
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while time.monotonic() < deadline and (
            _cgroup_pids(self.cgroup_root) or any(p.exists() for p in pod_netns)
        ):
            time.sleep(0.5)

    def log_paths(self) -> list[Path]:
        return [p.log_path for p in self.processes]


def _netns_in_use(name: str) -> bool:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return bool(pids.stdout.strip())


def _read_sysctl(key: str) -> str:
    return Path("/proc/sys", key).read_text().strip()


def _hierarchies() -> list[Path]:
    return [p for p in CGROUP_MOUNT.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()]


def _make_cgroup_root(root: str) -> None:
    for hierarchy in _hierarchies():
        path = hierarchy / root.lstrip("/")
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given its parent's
            for name in ("cpuset.cpus", "cpuset.mems"):
                (path / name).write_text((hierarchy / name).read_text())


def _cgroup_pids(root: str) -> list[int]:
    memory = CGROUP_MOUNT / "memory" / root.lstrip("/")
    if not memory.exists():
        return []
    return [int(pid) for procs in memory.rglob("cgroup.procs") for pid in procs.read_text().split()]


def _kill_cgroup(root: str) -> None:
    for pid in _cgroup_pids(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _cgroup_pids(root) and time.monotonic() < deadline:
        time.sleep(0.2)


def _remove_cgroup(root: str) -> None:
    for hierarchy in _hierarchies():
        top = hierarchy / root.lstrip("/")
        if top.exists():
            for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def _kill_shims(socket: Path) -> None:
    """The runc shims of this node's containerd (they leave containerd's process group on purpose)."""
    marker = str(socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if b"containerd-shim" in cmdline and marker in cmdline:
                os.kill(int(proc.name), signal.SIGKILL)


def _unmount_under(directory: Path) -> None:
    prefix = str(directory.resolve()) + "/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_log_links(directory: Path) -> None:
    if not HOST_CONTAINER_LOGS.exists():
        return
    prefix = str(directory / "pod-logs")
    for link in HOST_CONTAINER_LOGS.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(prefix):
                link.unlink()
