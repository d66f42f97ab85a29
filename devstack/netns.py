"""The network namespace the whole local stack lives in, so nothing it runs can reach beyond it.

Invoked by devstack/fixtures.py (one namespace per pytest session, entered before any service starts)
and by `python -m devstack up` (`qc-stack`, left for people to `ip netns exec` into). Inside: loopback,
and a bridge `qcbr0` holding the node's address, to which the CNI bridge plugin attaches every pod. There
is no default route, so a packet for any other address has nowhere to go.

Services keep listening on 127.0.0.1; pods reach them at the node's address through one DNAT rule
(node address, any TCP port -> 127.0.0.1, same port; `route_localnet` lets the bridge hand such packets
to loopback), and reach the apiserver at the `kubernetes` Service's ClusterIP, as in-cluster clients do,
through a second rule: there is no kube-proxy (the rule is the one thing it would do here).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from pathlib import Path

NODE_BRIDGE = "qcbr0"
NODE_ADDRESS = "10.213.0.1"
POD_SUBNET = "10.213.0.0/24"
# The `kubernetes` Service's ClusterIP: the first address of the apiserver's --service-cluster-ip-range.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
API_SERVICE_ADDRESS = "10.96.0.1"
API_SERVICE_PORT = 443
NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_host_netns_fd: int | None = None


class NamespaceUnavailable(RuntimeError):
    """The host cannot give the stack a network namespace (not root, or no `ip`/`iptables`)."""


def _run(*argv: str) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NamespaceUnavailable(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")


def current() -> str | None:
    """The name of the stack namespace this process is in, or None (recorded by `enter`)."""
    return os.environ.get("QC_NETNS")


def create(name: str) -> None:
    """A fresh namespace `name` with loopback, the node bridge and the two DNAT rules (see module doc)."""
    if os.geteuid() != 0:
        raise NamespaceUnavailable("the local node needs root (network namespaces, containers, cgroups)")
    delete(name)
    _run("ip", "netns", "add", name)
    in_ns = ("ip", "netns", "exec", name)
    _run("ip", "-n", name, "link", "set", "lo", "up")
    _run("ip", "-n", name, "link", "add", NODE_BRIDGE, "type", "bridge")
    _run("ip", "-n", name, "addr", "add", f"{NODE_ADDRESS}/24", "dev", NODE_BRIDGE)
    _run("ip", "-n", name, "link", "set", NODE_BRIDGE, "up")
    _run("ip", "-n", name, "addr", "add", f"{API_SERVICE_ADDRESS}/32", "dev", "lo")
    _run(*in_ns, "sysctl", "-q", "-w", f"net.ipv4.conf.{NODE_BRIDGE}.route_localnet=1")
    _run(
        *in_ns,
        "iptables",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-i",
        NODE_BRIDGE,
        "-d",
        NODE_ADDRESS,
        "-p",
        "tcp",
        "-j",
        "DNAT",
        "--to-destination",
        "127.0.0.1",
    )


def forward_api_service(api_port: int) -> None:
    """Pods' in-cluster clients dial 10.96.0.1:443; send that to the apiserver on loopback.

    Called from inside the namespace (after `enter`), once the apiserver's port is known.
    """
    target = f"127.0.0.1:{api_port}"
    rule = [
        "-d",
        API_SERVICE_ADDRESS,
        "-p",
        "tcp",
        "--dport",
        str(API_SERVICE_PORT),
        "-j",
        "DNAT",
        "--to-destination",
        target,
    ]
    # From pods (arriving on the bridge) and from processes of the node itself (the OUTPUT chain).
    _run("iptables", "-t", "nat", "-A", "PREROUTING", "-i", NODE_BRIDGE, *rule)
    _run("iptables", "-t", "nat", "-A", "OUTPUT", *rule)


def enter(name: str) -> None:
    """Move the calling thread, and every thread and child it starts from now on, into namespace `name`.

    Call it before any other thread starts: threads already running stay where they are.
    """
    global _host_netns_fd
    if _host_netns_fd is None:  # kept open: children that must reach the registries go back through it
        _host_netns_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise NamespaceUnavailable(f"setns into {name} failed: {os.strerror(error)}")
    finally:
        os.close(fd)
    os.environ["QC_NETNS"] = name


def host_command(argv: list[str]) -> list[str]:
    """`argv` run in the network namespace this process came from (for builds that reach a registry)."""
    if current() is None or _host_netns_fd is None:
        return argv
    return ["nsenter", f"--net=/proc/{os.getpid()}/fd/{_host_netns_fd}", *argv]


def delete(name: str) -> None:
    if (NETNS_DIR / name).exists():
        with contextlib.suppress(NamespaceUnavailable):
            _run("ip", "netns", "delete", name)


def delete_stale(prefix: str) -> None:
    """Remove namespaces `<prefix><pid>` whose pytest process is gone (a session killed before teardown)."""
    if not NETNS_DIR.exists():
        return
    for path in NETNS_DIR.glob(f"{prefix}*"):
        pid = path.name.removeprefix(prefix)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            delete(path.name)
