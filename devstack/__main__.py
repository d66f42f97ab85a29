"""`python -m devstack up|down|status`: the local stack for people (`make stack-up` / `make stack-down`).

`up` starts every service in the background under `.stack/`, writes `.stack/state.json` with the process
groups and endpoints, and prints how to reach each one; `down` stops them; `status` shows what runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

from devstack import binaries
from devstack.kube import KubeControlPlane
from devstack.process import ServiceStartError, stop_process_group
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ

STACK_DIR = binaries.REPO_ROOT / ".stack"
STATE_FILE = STACK_DIR / "state.json"


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
    kube = KubeControlPlane(STACK_DIR / "kube")
    rabbitmq = RabbitMQ(STACK_DIR / "rabbitmq")
    pubsub = PubSubEmulator(STACK_DIR / "pubsub")
    prometheus = Prometheus(STACK_DIR / "prometheus")
    services: list[KubeControlPlane | RabbitMQ | PubSubEmulator | Prometheus] = [
        kube,
        rabbitmq,
        pubsub,
        prometheus,
    ]
    try:
        for service in services:
            service.start()
    except (ServiceStartError, RuntimeError):
        for service in services:
            service.stop()
        raise
    pids = [p.pid for p in kube.processes] + [
        s.process.pid for s in (rabbitmq, pubsub, prometheus) if s.process and s.process.pid
    ]
    state = {
        "pids": pids,
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
    for pid in reversed(state["pids"]):
        stop_process_group(pid)
    STATE_FILE.unlink()
    print("local stack stopped")


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
        except (ServiceStartError, RuntimeError) as error:
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
