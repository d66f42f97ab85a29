"""`python -m devstack up|down|status`: the local stack for people (`make stack-up` / `make stack-down`).

`up` creates the network namespace `qc-stack` (devstack/netns.py) and starts every service inside it in the
background under `.stack/`: the control plane with a real node (containerd + kubelet, devstack/node.py),
RabbitMQ, the Pub/Sub emulator and Prometheus. It writes `.stack/state.json` with the process groups,
endpoints and what the kubelet changed on the host, and prints how to reach each one (from inside the
namespace: `ip netns exec qc-stack ...`). `down` stops them all, puts the host settings back and removes
the namespace; `status` shows what runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from devstack import binaries, netns
from devstack.kube import KubeControlPlane
from devstack.node import Node, NodeUnavailable
from devstack.process import ServiceStartError, stop_process_group
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ

STACK_DIR = binaries.REPO_ROOT / ".stack"
STATE_FILE = STACK_DIR / "state.json"
NETNS_NAME = "qc-stack"


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def up() -> dict[str, Any]:
    if STATE_FILE.exists():
        down()
    shutil.rmtree(STACK_DIR, ignore_errors=True)
    netns.create(NETNS_NAME)
    netns.enter(NETNS_NAME)  # before any service starts: every child inherits the namespace
    kube = KubeControlPlane(STACK_DIR / "kube", with_node=True)
    node = Node(STACK_DIR / "node", kube)
    rabbitmq = RabbitMQ(STACK_DIR / "rabbitmq")
    pubsub = PubSubEmulator(STACK_DIR / "pubsub")
    prometheus = Prometheus(STACK_DIR / "prometheus")
    services: list[KubeControlPlane | Node | RabbitMQ | PubSubEmulator | Prometheus] = [
        kube,
        node,
        rabbitmq,
        pubsub,
        prometheus,
    ]
    try:
        for service in services:
            service.start()
    except (ServiceStartError, RuntimeError):
        for service in reversed(services):
            service.stop()
        netns.delete(NETNS_NAME)
        raise
    pids = [p.pid for p in kube.processes] + [
        s.process.pid for s in (rabbitmq, pubsub, prometheus) if s.process and s.process.pid
    ]
    state = {
        "pids": pids,
        "netns": NETNS_NAME,
        "node": {
            "directory": str(node.directory),
            "pids": [p.pid for p in node.processes],
            "cgroup_root": node.cgroup_root,
            "saved_sysctls": node.saved_sysctls,
            "api_port": kube.api_port,
            "admin_token": kube.admin_token,
        },
        "node_address": netns.NODE_ADDRESS,
        "kubeconfig": str(kube.admin_kubeconfig),
        "kube_apiserver": kube.server,
        "rabbitmq_amqp_url": rabbitmq.amqp_url,
        "rabbitmq_management_url": rabbitmq.management_url,
        "pubsub_emulator_host": pubsub.host,
        "prometheus_url": prometheus.url,
        "prometheus_targets_dir": str(prometheus.targets_dir),
        "helm": str(binaries.ensure_built(binaries.HELM)["helm"]),
        "logs": str(STACK_DIR),
    }
    STATE_FILE.write_text(json.dumps(state, indent=2))
    return state


def down() -> None:
    if not STATE_FILE.exists():
        print("no local stack is running (no .stack/state.json)")
        return
    state = json.loads(STATE_FILE.read_text())
    node_state = state.get("node")
    if node_state is not None:
        netns.enter(state["netns"])  # the apiserver the node's pods are deleted through listens in there
        kube = KubeControlPlane(
            Path(state["kubeconfig"]).parent,
            api_port=node_state["api_port"],
            admin_token=node_state["admin_token"],
        )
        node = Node(
            Path(node_state["directory"]),
            kube,
            cgroup_root=node_state["cgroup_root"],
            saved_sysctls=dict(node_state["saved_sysctls"]),
        )
        node.stop(node_state["pids"])
    for pid in reversed(state["pids"]):
        stop_process_group(pid)
    if "netns" in state:
        netns.delete(state["netns"])
    STATE_FILE.unlink()
    print("local stack stopped; the host settings the kubelet changed are restored")


def status() -> None:
    if not STATE_FILE.exists():
        print("no local stack is running (make stack-up starts one)")
        return
    state = json.loads(STATE_FILE.read_text())
    alive = sum(_alive(pid) for pid in state["pids"])
    print(f"{alive} of {len(state['pids'])} processes running")
    describe(state)


def describe(state: dict[str, Any]) -> None:
    print(
        f"""
Everything runs in the network namespace {state["netns"]}: run commands there with
                 ip netns exec {state["netns"]} COMMAND
Node             {state["node_address"]} (containerd + kubelet; pods reach the services below there)
Kubernetes API   {state["kube_apiserver"]}
                 export KUBECONFIG={state["kubeconfig"]}
RabbitMQ         {state["rabbitmq_amqp_url"]}  (management UI {state["rabbitmq_management_url"]}, guest/guest)
Pub/Sub emulator export PUBSUB_EMULATOR_HOST={state["pubsub_emulator_host"]}
Prometheus       {state["prometheus_url"]}  (scrape targets: JSON files in {state["prometheus_targets_dir"]})
helm             {state["helm"]}
logs             {state["logs"]}/*/
Stop it all with: make stack-down"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    if args.command == "up":
        try:
            state = up()
        except (ServiceStartError, NodeUnavailable, RuntimeError) as error:
            print(f"the local stack did not start: {error}", file=sys.stderr)
            return 1
        print("local stack running:")
        describe(state)
    elif args.command == "down":
        down()
    else:
        status()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
