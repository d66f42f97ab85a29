"""Tests of the tooling the other tests rely on: polling, reading /metrics, marking stack tests."""
