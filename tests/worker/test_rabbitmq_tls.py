"""A real `qc-worker` over amqps:// on the real RabbitMQ with TLS listeners that want a client certificate
(`rabbitmq_tls`: a CA, the server's and a client's certificate made with openssl): it consumes with the CA
and its certificate; with a wrong CA, a name the certificate does not carry, or no client certificate, it
stays not ready (/readyz 503), says why in one log line, and keeps retrying with backoff."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.certificates import make_ca
from devstack.polling import wait_until
from devstack.services import RabbitMQ
from qc_common import worker_env
from tests.worker.test_rabbitmq_worker import publish
from tests.worker.worker_harness import WorkerProcess, body, completions


def tls_environment(broker: RabbitMQ, queue: str) -> dict[str, str]:
    assert broker.tls is not None
    return {
        worker_env.SOURCE: "rabbitmq",
        worker_env.RABBITMQ_URL: broker.amqps_url,
        worker_env.RABBITMQ_QUEUE: queue,
        worker_env.RABBITMQ_CA_FILE: str(broker.tls.ca_cert),
        worker_env.RABBITMQ_CLIENT_CERT_FILE: str(broker.tls.client_cert),
        worker_env.RABBITMQ_CLIENT_KEY_FILE: str(broker.tls.client_key),
        worker_env.TASK: "worker_tasks:work",
        worker_env.CONCURRENCY: "4",
    }


def test_a_worker_consumes_over_amqps_with_the_ca_and_its_client_certificate(
    rabbitmq_tls: RabbitMQ, records: Path, start_worker: Callable[..., WorkerProcess]
) -> None:
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    ids = [f"t{i}" for i in range(50)]
    asyncio.run(publish(rabbitmq_tls.amqp_url, queue, [body(i) for i in ids]))  # the plain port: set-up
    worker = start_worker(**tls_environment(rabbitmq_tls, queue))
    wait_until(lambda: set(ids) <= set(completions(records)), 60, "every message to be processed")
    assert worker.ready()
    connections = rabbitmq_tls.api("GET", "/api/connections")
    assert any(c.get("ssl") and c.get("port") == rabbitmq_tls.amqps_port for c in connections), connections


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong CA", "TLS certificate verify failed"),
        ("server name the certificate does not carry", "TLS hostname mismatch"),
        ("no client certificate", "TLS handshake refused by the server"),
    ],
)
def test_a_failed_tls_handshake_is_named_not_ready_and_retried(
    rabbitmq_tls: RabbitMQ, tmp_path: Path, case: str, expected: str
) -> None:
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    env = tls_environment(rabbitmq_tls, queue)
    if case == "wrong CA":
        env[worker_env.RABBITMQ_CA_FILE] = str(make_ca(tmp_path / "other-ca", "another-ca")[0])
    elif case == "no client certificate":
        del env[worker_env.RABBITMQ_CLIENT_CERT_FILE], env[worker_env.RABBITMQ_CLIENT_KEY_FILE]
    else:
        env[worker_env.RABBITMQ_SERVER_NAME] = "rabbitmq.example.com"
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:

        def attempts() -> int:
            return worker.log_path.read_text().count(expected)

        try:
            wait_until(lambda: attempts() >= 2, 30, f"two connection attempts failing with {expected!r}")
        except TimeoutError:
            raise AssertionError(worker.log_path.read_text()[-2000:]) from None
        assert worker.popen.poll() is None, "the worker must keep retrying, not exit"
        assert not worker.ready(), "/readyz must answer 503 while the broker cannot be reached"
        log = worker.log_path.read_text()
        assert "retrying in" in log
        assert "guest:guest" not in log, "the URL's credentials were logged"
    finally:
        worker.stop()
