"""`make demo`: the project's main job on one machine, shown live.

Brings up the local stack in a network namespace of its own (real Kubernetes with a real node: containerd
and a kubelet; RabbitMQ, Pub/Sub emulator, Prometheus), installs the chart with helm (the operator runs as
a pod of the image built from the Dockerfile), applies a RabbitMQ and a Pub/Sub QueueConsumer, publishes a
burst, and shows backlog, desired / current / ready replicas and messages processed while worker pods
drain it — with a few containers SIGKILLed. Ends with a summary table and a PNG plot under out/demo/.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from rich.console import Console
from rich.live import Live
from rich.table import Table

from devstack import binaries, netns
from devstack.e2e import EndToEnd, RunConfig, RunResult
from devstack.kube import KubeControlPlane
from devstack.node import Node, NodeUnavailable
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ
from devstack.timeline import Sample

OUT = binaries.REPO_ROOT / "out" / "demo"
NETNS_NAME = "qc-demo"


def live_table(samples: list[Sample], total: int) -> Table:
    table = Table(title="Queue Consumer Operator demo — live")
    for column in ("t (s)", "consumer", "backlog", "desired", "replicas", "ready", "workers", "processed"):
        table.add_column(column, justify="right")
    for s in samples:
        backlog = "…" if s.backlog is None else f"{s.backlog:.0f}"
        desired = "…" if s.desired is None else str(s.desired)
        progress = f"{s.processed}/{total} {'█' * int(20 * s.processed / max(total, 1)):<20}"
        table.add_row(
            f"{s.seconds:.0f}",
            s.consumer,
            backlog,
            desired,
            str(s.replicas),
            str(s.ready),
            str(s.running_workers),
            progress,
        )
    return table


def summary_table(result: RunResult) -> Table:
    table = Table(title=f"Summary ({result.seconds:.0f} s, {len(result.kills)} worker containers SIGKILLed)")
    for column in (
        "consumer",
        "published",
        "processed",
        "lost",
        "duplicates",
        "peak replicas",
        "scaled out at",
        "drained at",
        "back to 0 at",
    ):
        table.add_column(column, justify="right")

    def at(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} s"

    for name, c in result.consumers.items():
        table.add_row(
            name,
            str(c.published),
            str(c.processed),
            str(c.lost),
            str(c.duplicates),
            str(c.peak_replicas),
            at(c.scaled_out_after_seconds),
            at(c.drained_after_seconds),
            at(c.back_to_zero_after_seconds),
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--messages", type=int, default=1500, help="messages per consumer")
    parser.add_argument("--work-seconds", type=float, default=0.2, help="time each task takes")
    parser.add_argument("--kills", type=int, default=3, help="random worker SIGKILLs during the drain")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    run_config = RunConfig(
        messages_per_consumer=args.messages,
        work_seconds=args.work_seconds,
        chaos_kills=args.kills,
        max_replicas=8,
        cooldown_seconds=15,
        long_tasks=8,
        scale_down_window_seconds=10,
        timeout_seconds=600,
    )
    workdir = OUT / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    helm = binaries.ensure_built(binaries.HELM)["helm"]
    try:
        netns.create(NETNS_NAME)
        netns.enter(NETNS_NAME)  # before anything starts: the whole stack and its pods live in there
    except netns.NamespaceUnavailable as error:
        console.print(f"[red]this host cannot run the demo's node: {error}[/red]")
        return 2
    kube = KubeControlPlane(workdir / "kube", with_node=True)
    node = Node(workdir / "node", kube)
    rabbitmq, pubsub, prometheus = (
        RabbitMQ(workdir / "rabbitmq"),
        PubSubEmulator(workdir / "pubsub"),
        Prometheus(workdir / "prometheus"),
    )
    services = (kube, node, rabbitmq, pubsub, prometheus)
    end_to_end = None
    try:
        with console.status(
            "starting the local stack (Kubernetes with a node, RabbitMQ, Pub/Sub, Prometheus)"
        ):
            try:
                for service in services:
                    service.start()
            except NodeUnavailable as error:
                console.print(f"[red]{error}[/red]")
                return 2
        console.print(
            f"Kubernetes {kube.server}  RabbitMQ {rabbitmq.management_url}  Prometheus {prometheus.url}"
        )
        end_to_end = EndToEnd(node, rabbitmq, pubsub, prometheus, helm, workdir, run_config)
        with console.status("installing the chart, starting the operator and two QueueConsumers"):
            end_to_end.start()
        console.print(f"publishing {args.messages} messages to each consumer; watch them drain:")
        with Live(console=console, refresh_per_second=2) as live:
            result = end_to_end.run(lambda samples: live.update(live_table(samples, args.messages)))
        console.print(summary_table(result))
        plot = result.timeline.plot(
            OUT / "demo.png", "Queue Consumer Operator demo: burst, scale out, drain, scale in"
        )
        result.timeline.save(OUT / "timeline.json")
        console.print(f"plot: {plot.relative_to(binaries.REPO_ROOT)}   timeline: out/demo/timeline.json")
        lost = sum(c.lost for c in result.consumers.values())
        console.print("nothing lost" if lost == 0 else f"[red]{lost} messages lost[/red]")
        return 0 if result.finished and lost == 0 else 1
    finally:
        if end_to_end is not None:
            end_to_end.stop()
        for service in reversed(services):
            service.stop()
        netns.delete(NETNS_NAME)


if __name__ == "__main__":
    sys.exit(main())
