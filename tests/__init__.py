"""The test suite: one folder per topic; the local stack comes from devstack.fixtures (see conftest.py)."""
