"""pytest plugin (registered by tests/conftest.py): which tests pytest-xdist may hand to different workers.

`make test` runs the suite in several xdist workers (`--dist loadgroup`), each a session with its own
stack (devstack/fixtures.py, devstack/node_fixtures.py). Tests run anywhere, one by one, except:
- every test that needs the real node, in one group: the host has room for one node (one kubelet, one
  containerd, the host's sysctls), so one worker starts it and runs them all;
- the tests of a module that share a module-scoped fixture (a chart installed once, a rendered chart), in
  one group per module, so that fixture is made once, not once per worker.
The slow tests go first, so no worker is left with one of them at the end while the others idle.
"""

from __future__ import annotations

import pytest

NODE_FIXTURES = frozenset({"node", "node_kube"})
NODE_GROUP = "node"


def _group(item: pytest.Item) -> str | None:
    fixtures = getattr(item, "fixturenames", ())
    if NODE_FIXTURES.intersection(fixtures):
        return NODE_GROUP
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    if any(d.scope in ("module", "package", "class") for defs in definitions for d in defs):
        return item.nodeid.split("::")[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first
