"""Root fixtures: the local stack (devstack.fixtures) for every test folder, and pytester for the tests of
that plugin itself (tests/devstack)."""

pytest_plugins = ["devstack.fixtures", "pytester"]
