"""Root fixtures: the local stack (devstack.fixtures) for every test folder."""

pytest_plugins = ["devstack.node_fixtures", "devstack.fixtures"]
