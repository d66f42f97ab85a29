"""devstack.scheduling keeps together, in one xdist worker, the tests that need the one real node and the
tests of a module sharing a module-scoped fixture; the rest spread over the workers, slow ones first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INI = f"""[pytest]
pythonpath = {REPO_ROOT}
asyncio_default_fixture_loop_scope = function
markers =
    slow: slow
"""

SAMPLE_TESTS = """
import pytest

@pytest.fixture(scope="session")
def node():
    return "the node"

@pytest.fixture(scope="module")
def rendered():
    return "a chart rendered once"

def test_node_a(node): pass
def test_node_b(node): pass
def test_node_c(node): pass
def test_chart_a(rendered): pass
def test_chart_b(rendered): pass
def test_free_a(): pass
def test_free_b(): pass
def test_free_c(): pass
def test_free_d(): pass

@pytest.mark.slow
def test_slow(): pass
"""


def workers_by_test(output: str) -> dict[str, str]:
    """test name -> the xdist worker that ran it, from `-v` lines like `[gw1] [ 10%] PASSED x.py::t@g`."""
    found = re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED \S+::(\w+)", output)
    return {test: worker for worker, test in found}


def test_node_tests_share_one_worker_a_module_fixture_keeps_its_module_together(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest('pytest_plugins = ["devstack.scheduling"]')
    pytester.makeini(INI)
    pytester.makepyfile(test_sample=SAMPLE_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    ran_on = workers_by_test(result.stdout.str())
    assert len(ran_on) == 10, ran_on
    assert ran_on["test_node_a"] == ran_on["test_node_b"] == ran_on["test_node_c"]
    assert ran_on["test_chart_a"] == ran_on["test_chart_b"]
    assert len(set(ran_on.values())) > 1, "nothing ran side by side"


def test_slow_tests_are_collected_first(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["devstack.scheduling"]')
    pytester.makeini(INI)
    pytester.makepyfile(test_sample=SAMPLE_TESTS)
    result = pytester.runpytest("--collect-only", "-q")
    first = result.stdout.lines[0]
    assert first == "test_sample.py::test_slow", result.stdout.str()
