"""The local node is real: containerd runs the project's image as a pod with the operator's defaults.

The pod is built by the operator's own builder (`qc_operator.builders.pod_template`), so it carries the
security context and volumes every worker pod gets; only its command is swapped for a probe that reports
what the container sees. The kernel enforces the memory limit (cgroup), the root filesystem is read-only,
the user is not root, and a service listening on 127.0.0.1 in the stack is reached at the node's address.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from devstack import binaries, image, netns
from devstack.node import NODE_NAME, Node
from qc_operator import builders, spec

MEMORY_LIMIT_BYTES = 192 * 1024 * 1024
PROBE = """
import json, os, time, urllib.request
report = {"uid": os.getuid(), "gid": os.getgid()}
try:
    open("/app/probe", "w")
    report["root_writable"] = True
except OSError:
    report["root_writable"] = False
with open("/tmp/probe", "w") as f:
    report["tmp_writable"] = f.write("x") == 1
os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)  # libraries' caches and settings: $HOME is /tmp
report["home"] = os.environ["HOME"]
with open("/sys/fs/cgroup/memory/memory.limit_in_bytes") as f:
    report["memory_limit_bytes"] = int(f.read())
report["service"] = urllib.request.urlopen(os.environ["SERVICE_URL"], timeout=10).read().decode()
print(json.dumps(report), flush=True)
time.sleep(600)  # stay up, so the test can look at the container's cgroup from the host
"""


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_service() -> Iterator[int]:
    """An HTTP server bound to 127.0.0.1 only, as every service of the stack is."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def core(node: Node) -> Iterator[Any]:
    with config.new_client_from_config(config_file=str(node.kube.admin_kubeconfig)) as api_client:
        yield client.CoreV1Api(api_client)


def worker_pod(name: str, port: int) -> dict[str, Any]:
    raw = {
        "source": {
            "rabbitmq": {
                "queue": "q",
                "connectionSecretRef": {"name": "s", "key": "url"},
                "managementSecretRef": {"name": "s", "key": "management"},
            }
        },
        "worker": {
            "image": image.PROJECT_IMAGE,
            "task": "x:y",
            "resources": {"limits": {"memory": f"{MEMORY_LIMIT_BYTES}"}},
        },
    }
    owner = {"apiVersion": "qc/v1", "kind": "QueueConsumer", "metadata": {"name": name, "uid": "u"}}
    template = builders.pod_template(owner, spec.parse(raw))
    container = template["spec"]["containers"][0]
    container.update(
        command=["python", "-c", PROBE],
        env=[{"name": "SERVICE_URL", "value": f"http://{netns.NODE_ADDRESS}:{port}/"}],
    )
    for probe in ("readinessProbe", "livenessProbe"):
        container.pop(probe)
    template["spec"].update(restartPolicy="Never", serviceAccountName="default")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **template["metadata"]},
        "spec": template["spec"],
    }


def wait_for_report(core: Any, name: str, timeout_seconds: float) -> tuple[Any, dict[str, Any]]:
    """The running pod and the JSON line its probe printed."""
    deadline = time.monotonic() + timeout_seconds
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, "default")
        assert pod.status.phase in ("Pending", "Running"), core.read_namespaced_pod_log(name, "default")
        if pod.status.phase == "Running":
            lines = core.read_namespaced_pod_log(name, "default").strip().splitlines()
            if lines:
                return pod, json.loads(lines[-1])
        time.sleep(0.5)
    raise AssertionError(f"pod {name} printed nothing in {timeout_seconds} s: {pod and pod.status}")


def test_node_is_a_ready_kubelet_on_containerd(node: Node, core: Any) -> None:
    info = core.read_node(NODE_NAME)
    assert info.status.node_info.kubelet_version == binaries.KUBELET.version
    assert info.status.node_info.container_runtime_version.startswith("containerd://1.")
    assert {a.address for a in info.status.addresses if a.type == "InternalIP"} == {netns.NODE_ADDRESS}
    assert not [t for t in info.spec.taints or [] if t.key == "node.kubernetes.io/not-ready"]


def test_worker_pod_runs_the_image_non_root_read_only_with_its_memory_limit(
    node: Node, core: Any, loopback_service: int
) -> None:
    name = f"probe-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_pod("default", worker_pod(name, loopback_service))
    pod, report = wait_for_report(core, name, 120)
    assert report["uid"] == builders.WORKER_USER_ID
    assert report["gid"] == builders.WORKER_USER_ID
    assert report["root_writable"] is False
    assert report["tmp_writable"] is True  # the emptyDir the builder mounts
    assert report["home"] == "/tmp"  # the Dockerfile's HOME: writable, where /app is not
    assert report["memory_limit_bytes"] == MEMORY_LIMIT_BYTES
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(netns.POD_SUBNET)
    assert report["service"] == f"hello from {pod.status.pod_ip}"
    (status,) = pod.status.container_statuses
    assert status.image == image.PROJECT_IMAGE
    assert status.image_id.startswith("sha256:")
    assert status.container_id.startswith("containerd://")
    # The limit is the kernel's, on the host side too: the container's own memory cgroup under the node's.
    container_id = status.container_id.removeprefix("containerd://")
    cgroups = list(Path("/sys/fs/cgroup/memory", node.cgroup_root.lstrip("/")).rglob(container_id))
    assert cgroups, f"no memory cgroup for {container_id} under {node.cgroup_root}"
    assert int((cgroups[0] / "memory.limit_in_bytes").read_text()) == MEMORY_LIMIT_BYTES
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_kubelet_host_changes_are_recorded_for_teardown(node: Node) -> None:
    # The kubelet forces overcommit on; stop() writes back what was there before it started.
    assert Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1"
    assert set(node.saved_sysctls) == {
        "vm/overcommit_memory",
        "vm/panic_on_oom",
        "kernel/panic",
        "kernel/panic_on_oops",
        "kernel/keys/root_maxkeys",
        "kernel/keys/root_maxbytes",
    }
