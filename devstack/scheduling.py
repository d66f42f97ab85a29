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
from _pytest.nodeid import coerce_node_id

NODE_FIXTURES = frozenset({"node", "node_kube"})
NODE_GROUP = "node"


def _group(item: pytest.Item) -> str | None:
    marked = item.get_closest_marker("xdist_group")
    if marked is not None and marked.args:
        return str(marked.args[0])
    fixtures = getattr(item, "fixturenames", ())
    if NODE_FIXTURES.intersection(fixtures):
        return NODE_GROUP
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    if any(d.scope in ("module", "package", "class") for defs in definitions for d in defs):
        return item.nodeid.split("::")[0]
    return None


def _join(item: pytest.Item, group: str) -> None:
    item.add_marker(pytest.mark.xdist_group(group))
    # xdist's controller groups by a "@group" suffix of the test id, which its worker writes into
    # `item._nodeid`; pytest 9 derives the id from `item._id`, so that write is lost: write it here.
    if not item.nodeid.endswith(f"@{group}"):
        item._id = coerce_node_id(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config.option, "loadgroup", False):  # an xdist worker of a `--dist loadgroup` run
        for item in items:
            group = _group(item)
            if group is not None:
                _join(item, group)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow ones first
