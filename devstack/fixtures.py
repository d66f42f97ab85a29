"""Session-scoped pytest fixtures for the local stack, registered by tests/conftest.py.

Each service starts the first time a test asks for it and stops at the end of the session. When a test
fails, the tails of the logs of every service started so far are attached to its report. A test that uses
one of these services, directly or through another fixture, is marked `stack`: `make test-fast` runs the
others (`-m "not stack"`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import binaries
from devstack.certificates import make_certificates
from devstack.kube import KubeControlPlane
from devstack.process import log_tail, running
from devstack.services import Prometheus, PubSubEmulator, RabbitMQ

STACK_FIXTURES = frozenset(
    {"stack_dir", "kube", "rabbitmq", "rabbitmq_tls", "pubsub_emulator", "prometheus", "helm_binary"}
)
_started: list[KubeControlPlane | RabbitMQ | PubSubEmulator | Prometheus] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stack: needs a service of the local stack (set by devstack.fixtures)")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # fixturenames is the closure: a fixture's own fixtures (admin -> kube) are in it too.
        if STACK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def kube(stack_dir: Path) -> Iterator[KubeControlPlane]:
    """A real etcd + kube-apiserver + kube-controller-manager; `kube.admin_kubeconfig` is cluster-admin."""
    yield from running(KubeControlPlane(stack_dir / "kube"), _started)


@pytest.fixture(scope="session")
def rabbitmq(stack_dir: Path) -> Iterator[RabbitMQ]:
    yield from running(RabbitMQ(stack_dir / "rabbitmq"), _started)


@pytest.fixture(scope="session")
def rabbitmq_tls(stack_dir: Path) -> Iterator[RabbitMQ]:
    """A second node with TLS listeners (amqps://, https:// management) that want a client certificate:
    `rabbitmq_tls.tls` holds the CA, the server's and a client's certificate, made with openssl."""
    certificates = make_certificates(stack_dir / "rabbitmq-tls-certificates")
    broker = RabbitMQ(stack_dir / "rabbitmq-tls", tls=certificates, require_client_certificate=True)
    yield from running(broker, _started)


@pytest.fixture(scope="session")
def pubsub_emulator(stack_dir: Path) -> Iterator[PubSubEmulator]:
    """The Pub/Sub emulator; point clients at it with PUBSUB_EMULATOR_HOST=pubsub_emulator.host."""
    yield from running(PubSubEmulator(stack_dir / "pubsub"), _started)


@pytest.fixture(scope="session")
def prometheus(stack_dir: Path) -> Iterator[Prometheus]:
    yield from running(Prometheus(stack_dir / "prometheus"), _started)


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    return binaries.ensure_built(binaries.HELM)["helm"]


@pytest.fixture
def pubsub_env(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> PubSubEmulator:
    """Points google-cloud-pubsub in this process (and children) at the emulator."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    return pubsub_emulator


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and not os.environ.get("QC_NO_SERVICE_LOGS"):
        for service in _started:
            for path in service.log_paths():
                report.sections.append((f"service log {path.name}", log_tail(path, 3000)))
