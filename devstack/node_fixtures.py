"""pytest plugin (registered by tests/conftest.py): the session's network namespace and the real node.

At configure time, before any service starts, the pytest process moves into a network namespace of its
own (devstack/netns.py), so every service of the session, and the node's pods, live there. When the host
cannot give one (not root), the session runs on the host's loopback as before and the `node` fixture fails
with the reason: tests that need real pods never fall back to anything else.

Under pytest-xdist (`make test` runs `-n`) each worker is a session of its own, with its own namespace and
services; the controller runs no test and stays where it is. The host has room for one node only, so the
tests that need it all run in one worker (devstack/scheduling.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import netns
from devstack.kube import KubeControlPlane
from devstack.node import Node, NodeUnavailable
from devstack.process import log_tail, running

NETNS_PREFIX = "qc-test-"
_state: dict[str, str] = {}
_node_services: list[KubeControlPlane | Node] = []


def _xdist_controller(config: pytest.Config) -> bool:
    """True in the process that hands tests to xdist's workers (and runs none itself)."""
    workers = getattr(config.option, "numprocesses", None)
    return bool(workers) and "PYTEST_XDIST_WORKER" not in os.environ


def pytest_configure(config: pytest.Config) -> None:
    if netns.current() is not None:  # already inside one (e.g. `make stack-up` users running pytest)
        return
    if _xdist_controller(config):
        return
    name = f"{NETNS_PREFIX}{os.getpid()}"
    try:
        netns.delete_stale(NETNS_PREFIX)
        netns.create(name)
        netns.enter(name)
        _state["netns"] = name
    except (netns.NamespaceUnavailable, OSError) as error:
        _state["error"] = str(error)


def pytest_unconfigure(config: pytest.Config) -> None:
    # The namespace lives on while this process is in it; this only removes its name.
    if "netns" in _state:
        netns.delete(_state.pop("netns"))


@pytest.fixture(scope="session")
def node_kube(stack_dir: Path) -> Iterator[KubeControlPlane]:
    """A control plane of its own for the real node (with kube-scheduler), apart from the stand-in's."""
    if "error" in _state:
        raise NodeUnavailable(f"no network namespace for the node: {_state['error']}")
    yield from running(KubeControlPlane(stack_dir / "node-kube", with_node=True), _node_services)


@pytest.fixture(scope="session")
def node(node_kube: KubeControlPlane, stack_dir: Path) -> Iterator[Node]:
    """containerd + a kubelet, Ready, with the project's image imported (devstack/node.py)."""
    yield from running(Node(stack_dir / "node", node_kube), _node_services)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and not os.environ.get("QC_NO_SERVICE_LOGS"):
        for service in _node_services:
            for path in service.log_paths():
                report.sections.append((f"node log {path.name}", log_tail(path, 3000)))
