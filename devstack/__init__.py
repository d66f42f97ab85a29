"""The local stack: real Kubernetes, RabbitMQ, Pub/Sub emulator and Prometheus on 127.0.0.1.

Used two ways: as session-scoped pytest fixtures (tests/conftest.py) and by people through
`make stack-up` / `make stack-down` (`python -m devstack`). Every service binds loopback on a free port,
keeps its log in the stack's directory, and is started with a readiness check and a timeout: a service
that will not start raises `process.ServiceStartError` carrying its log, it never hangs.

Two helpers serve the tests and benchmarks too: `polling.wait_until` (every wait has a deadline and says
what it waited for) and `scrape` (a process's /metrics, parsed by prometheus_client).

This is development tooling, not part of the shipped distribution.
"""
