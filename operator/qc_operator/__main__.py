"""`qc-operator`: run the operator, simulate scaling settings against a traffic trace, or convert KEDA
ScaledObjects into QueueConsumers."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

from qc_operator.convert import cli as convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qc-operator", description="Queue Consumer Operator.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="watch QueueConsumers and keep their workers sized to the backlog")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)"
    )
    run.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="kopf's health endpoint URL")
    run.add_argument("--verbose", action="store_true")
    commands.add_parser(
        "simulate", help="replay a traffic trace through our scaler and KEDA + HPA", add_help=False
    )
    convert.add_arguments(
        commands.add_parser(
            "convert",
            help="write the QueueConsumer equivalent to KEDA ScaledObjects and the Deployments they scale",
            description=convert.DESCRIPTION,
        )
    )
    return parser


def peering_priority(started_seconds: float, tie_break: int) -> int:
    """This replica's kopf peering priority: the oldest replica acts, the others stand by.

    kopf pauses every replica that sees a peer of higher *or equal* priority, so equal priorities (kopf's
    default, 0 for all) would leave all of them paused. Earlier start, higher priority: a replica that
    restarts joins as a standby instead of taking over; the random part breaks a same-millisecond tie."""
    return -int(started_seconds * 1000) * 1000 + tie_break % 1000


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from qc_operator.simulator.cli import main as simulate

        return simulate(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "convert":
        return convert.run(args, sys.stdin, sys.stdout, sys.stderr)
    import kopf

    from qc_operator import handlers  # registers the handlers
    from qc_operator.settings import OperatorSettings

    settings = OperatorSettings.from_environment()
    kopf.configure(verbose=args.verbose)
    if settings.peering:
        from qc_operator.kube import ensure_peering_objects, make_api_client

        ensure_peering_objects(make_api_client(settings.kubeconfig), settings.peering, args.namespace)
    asyncio.run(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness,
            standalone=not settings.peering,
            peering_name=settings.peering or None,
            priority=peering_priority(time.time(), random.randrange(1000)),
            registry=kopf.get_default_registry(),
        )
    )
    del handlers
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
