"""The operator reads RabbitMQ's backlog over https:// with the CA and client certificate a QueueConsumer
names (`rabbitmq_tls`: the real RabbitMQ with TLS listeners that want a client certificate, certificates
made with openssl), and a handshake that fails says why — certificate verify failed, hostname mismatch,
client certificate wanted — within the read's timeout, as a SourceError condition and a Warning Event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from devstack.certificates import make_ca
from devstack.polling import WaitTimeout, wait_until
from devstack.services import RabbitMQ
from qc_operator.errors import SourceError
from qc_operator.http import JsonFetcher
from qc_operator.sources.base import ClientTls
from qc_operator.sources.rabbitmq import RabbitMQBacklog
from tests.operator.operator_harness import (
    condition,
    create,
    create_secret,
    get_qc,
    new_namespace,
    queue_consumer,
    set_backlog,
)

BACKLOG = 7
READ_TIMEOUT_SECONDS = 5.0


def material(broker: RabbitMQ, **changes: Any) -> ClientTls:
    assert broker.tls is not None
    values = {
        "ca_pem": broker.tls.ca_cert.read_text(),
        "client_cert_pem": broker.tls.client_cert.read_text(),
        "client_key_pem": broker.tls.client_key.read_text(),
        **changes,
    }
    return ClientTls(**values)


def management_url(broker: RabbitMQ) -> str:
    return f"https://guest:guest@127.0.0.1:{broker.management_tls_port}"


def queue_with_backlog(broker: RabbitMQ) -> str:
    queue = f"tls-{uuid.uuid4().hex[:6]}"
    asyncio.run(set_backlog(broker.amqp_url, queue, BACKLOG))
    wait_until(lambda: broker.queue_counts(queue)["messages"] == BACKLOG, 30, "the management API's count")
    return queue


async def read(broker: RabbitMQ, queue: str, tls: ClientTls) -> float:
    async with aiohttp.ClientSession() as session:
        reader = RabbitMQBacklog(management_url(broker), queue, "/", tls)
        return (await reader.read(JsonFetcher(session, READ_TIMEOUT_SECONDS))).messages


def test_the_backlog_is_read_over_https_with_the_ca_and_the_client_certificate(
    rabbitmq_tls: RabbitMQ,
) -> None:
    queue = queue_with_backlog(rabbitmq_tls)
    assert asyncio.run(read(rabbitmq_tls, queue, material(rabbitmq_tls))) == BACKLOG


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA", "TLS certificate verify failed"),
        ("server name the certificate does not carry", "TLS hostname mismatch"),
        ("no client certificate", "TLS handshake refused by the server"),
    ],
)
def test_a_failed_handshake_is_a_source_error_naming_its_cause(
    rabbitmq_tls: RabbitMQ, tmp_path: Path, case: str, expected: str
) -> None:
    if case == "wrong CA":
        tls = material(rabbitmq_tls, ca_pem=make_ca(tmp_path, "another-ca")[0].read_text())
    elif case == "no client certificate":
        tls = material(rabbitmq_tls, client_cert_pem=None, client_key_pem=None)
    else:
        tls = material(rabbitmq_tls, server_name="rabbitmq.example.com")
    with pytest.raises(SourceError) as raised:
        asyncio.run(read(rabbitmq_tls, "any", tls))
    assert expected in str(raised.value)
    assert "guest" not in str(raised.value), "credentials in the message"


def tls_consumer(name: str, queue: str, ca_secret: str) -> dict[str, Any]:
    body = queue_consumer(name, queue)
    body["spec"]["source"]["rabbitmq"]["tls"] = {
        "caSecretRef": {"name": ca_secret},  # key: the schema's default, ca.crt
        "clientCertSecretRef": {"name": "rabbitmq-client"},  # tls.crt / tls.key
    }
    return body


def test_the_operator_reads_over_https_and_reports_a_wrong_ca_as_a_condition_and_event(
    rabbitmq_tls: RabbitMQ,
    admin: client.ApiClient,
    run_operator: Callable[..., AbstractContextManager[KopfRunner]],
    tmp_path: Path,
) -> None:
    assert rabbitmq_tls.tls is not None
    namespace, queue = new_namespace(admin, "tls"), queue_with_backlog(rabbitmq_tls)
    secrets = {"url": rabbitmq_tls.amqps_url, "managementUrl": management_url(rabbitmq_tls)}
    create_secret(admin, namespace, "rabbitmq", secrets)
    create_secret(admin, namespace, "rabbitmq-ca", {"ca.crt": rabbitmq_tls.tls.ca_cert.read_text()})
    create_secret(admin, namespace, "other-ca", {"ca.crt": make_ca(tmp_path, "other")[0].read_text()})
    client_files = {"tls.crt": rabbitmq_tls.tls.client_cert, "tls.key": rabbitmq_tls.tls.client_key}
    create_secret(admin, namespace, "rabbitmq-client", {k: p.read_text() for k, p in client_files.items()})
    with run_operator():
        create(admin, namespace, tls_consumer("trusted", queue, "rabbitmq-ca"))
        create(admin, namespace, tls_consumer("untrusted", queue, "other-ca"))

        def backlog_read() -> bool:
            return (get_qc(admin, namespace, "trusted").get("status") or {}).get("backlog") == BACKLOG

        def refused() -> dict[str, Any] | None:
            found = condition(get_qc(admin, namespace, "untrusted"), "SourceError")
            return found if found and found["status"] == "True" else None

        try:
            wait_until(backlog_read, 60, "the backlog read over https")
            found = wait_until(refused, 60, "the SourceError condition for the wrong CA")
        except WaitTimeout as timeout:
            raise AssertionError(
                f"{timeout}: {get_qc(admin, namespace, 'untrusted').get('status')}"
            ) from None
        assert "TLS certificate verify failed" in found["message"]

        def warned() -> str | None:
            events = client.CoreV1Api(admin).list_namespaced_event(namespace).items
            return next(
                (
                    e.message
                    for e in events
                    if e.involved_object.name == "untrusted" and e.reason == "SourceError"
                ),
                None,
            )

        assert "TLS certificate verify failed" in wait_until(warned, 30, "a Warning Event for the wrong CA")
    deployment = client.AppsV1Api(admin).read_namespaced_deployment("trusted-worker", namespace)
    container = deployment.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert env["QC_RABBITMQ_CA_FILE"] == "/var/run/secrets/queueconsumer.io/rabbitmq/ca/ca.crt"
    assert env["QC_RABBITMQ_CLIENT_KEY_FILE"] == "/var/run/secrets/queueconsumer.io/rabbitmq/client/tls.key"
    mounts = {m.mount_path: m.read_only for m in container.volume_mounts}
    assert mounts["/var/run/secrets/queueconsumer.io/rabbitmq/client"] is True
    volumes = {v.name: v.secret for v in deployment.spec.template.spec.volumes if v.secret}
    assert volumes["rabbitmq-tls-client"].secret_name == "rabbitmq-client"
    assert volumes["rabbitmq-tls-client"].default_mode == 0o440
