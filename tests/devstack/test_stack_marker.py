"""devstack.fixtures marks every test that uses a service of the local stack, so `make test-fast` can leave
those out with `-m "not stack"`."""

from __future__ import annotations

import pytest

SAMPLE_TESTS = """
import pytest

@pytest.fixture
def admin(kube):
    return kube

def test_uses_the_apiserver(kube):
    pass

def test_uses_it_through_another_fixture(admin):
    pass

def test_uses_helm(helm_binary):
    pass

def test_uses_nothing_of_the_stack(tmp_path):
    pass
"""


def test_tests_using_the_stack_are_marked_and_the_rest_is_not(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["devstack.fixtures"]')
    pytester.makepyfile(test_sample=SAMPLE_TESTS)
    # --collect-only: nothing is set up, no service starts.
    options = ["--collect-only", "-q", "-o", "asyncio_default_fixture_loop_scope=function"]
    fast = pytester.runpytest(*options, "-m", "not stack")
    assert fast.ret == 0
    fast.stdout.fnmatch_lines(["test_sample.py::test_uses_nothing_of_the_stack", "*1/4 tests collected*"])
    stack = pytester.runpytest(*options, "-m", "stack")
    stack.stdout.fnmatch_lines(["*3/4 tests collected*"])
    assert "test_uses_nothing_of_the_stack" not in stack.stdout.str()
