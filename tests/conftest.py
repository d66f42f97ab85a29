"""Root fixtures: the local stack (devstack.fixtures) for every test folder, and pytester for the tests of
that plugin itself (tests/devstack)."""

import os

# No test may reach Google's metadata server address (169.254.169.254): google-auth's Application Default
# Credentials look for it unless told not to. The tests that exercise them run a stand-in on loopback.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"

# Every session first moves into a network namespace of its own (devstack.node_fixtures), then starts its
# services there.
pytest_plugins = ["devstack.node_fixtures", "devstack.fixtures", "devstack.scheduling", "pytester"]
