"""`qc-operator convert`'s flags, and the only I/O of the conversion: read the YAML files (or stdin), print
the QueueConsumers, or say on stderr what cannot be converted and exit 1.

Wired into `qc_operator.__main__` as a subcommand. Nothing is printed when any ScaledObject fails, so a
pipe into `kubectl apply -f -` never applies half of a conversion.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

import yaml

from qc_operator.convert import consumer, render
from qc_operator.convert.model import ConversionError, Options, SecretRef

DESCRIPTION = (
    "Read KEDA ScaledObjects (rabbitmq, gcp-pubsub or prometheus triggers), their TriggerAuthentications or "
    "ClusterTriggerAuthentications and the Deployments they scale from YAML files (multi-document; - for "
    "stdin, e.g. from kubectl get -o yaml), and write the equivalent QueueConsumers to stdout, with a "
    "comment for everything that has no equivalent."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files, or - for stdin")
    parser.add_argument("--task", help="MODULE:FUNCTION, the task qc-worker runs for each message (required)")
    parser.add_argument("--image", help="the worker image (default: the Deployment's)")
    parser.add_argument("--name", help="the QueueConsumer's name (default: the Deployment's)")
    parser.add_argument(
        "--keep-keda-behaviour",
        action="store_true",
        help="scale as KEDA + the HPA do with their defaults (scaling.preset hpa), not with ours",
    )
    parser.add_argument(
        "--rabbitmq-connection-secret", metavar="NAME/KEY", help="Secret key with the workers' amqp:// URL"
    )
    parser.add_argument(
        "--rabbitmq-management-secret",
        metavar="NAME/KEY",
        help="Secret key with the management API URL (http://user:password@host:15672)",
    )
    parser.add_argument("--rabbitmq-queue", help="the queue the workers consume (with a prometheus trigger)")
    parser.add_argument(
        "--pubsub-subscription",
        metavar="projects/P/subscriptions/S",
        help="the subscription the workers pull (with a prometheus trigger)",
    )
    parser.add_argument("--gcp-project", help="the project of a subscription named without one")


def options(args: argparse.Namespace) -> Options:
    def secret(text: str | None, flag: str) -> SecretRef | None:
        return SecretRef.parse(text, flag) if text else None

    return Options(
        task=args.task,
        image=args.image,
        name=args.name,
        keep_keda_behaviour=args.keep_keda_behaviour,
        rabbitmq_connection=secret(args.rabbitmq_connection_secret, "--rabbitmq-connection-secret"),
        rabbitmq_management=secret(args.rabbitmq_management_secret, "--rabbitmq-management-secret"),
        rabbitmq_queue=args.rabbitmq_queue,
        pubsub_subscription=args.pubsub_subscription,
        gcp_project=args.gcp_project,
    )


def read_documents(files: list[str], stdin: TextIO) -> list[object]:
    documents: list[object] = []
    for name in files:
        try:
            text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
            documents.extend(d for d in yaml.safe_load_all(text) if d is not None)
        except OSError as error:
            raise ConversionError(f"cannot read {name}: {error.strerror}") from error
        except yaml.YAMLError as error:
            raise ConversionError(f"{'stdin' if name == '-' else name} is not YAML: {error}") from error
    return documents


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    try:
        converted = consumer.convert_all(read_documents(args.files, stdin), options(args))
    except ConversionError as error:
        for line in str(error).splitlines():
            print(f"qc-operator convert: {line}", file=stderr)
        return 1
    stdout.write(render.render(converted))
    return 0
