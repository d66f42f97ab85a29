# The two commands: `make demo` (the main job) and `make test` (the whole suite). Each does its own set-up.
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH):/usr/local/go/bin

.PHONY: help bootstrap test test-fast lint demo stack-up stack-down stack-status bench-worker bench-operator \
        bench-simulator bench-keda bench-pod-memory manifests dashboards scan clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

bootstrap: ## install Debian packages, the virtualenv and the Go-built binaries (skips what is there)
	@scripts/bootstrap.sh

lint: bootstrap ## ruff, mypy --strict and the import rules
	$(VENV)/bin/ruff check common operator worker devstack tests benchmarks
	$(VENV)/bin/ruff format --check common operator worker devstack tests benchmarks
	$(VENV)/bin/mypy common/qc_common operator/qc_operator worker/qc_worker devstack benchmarks
	$(VENV)/bin/lint-imports

# The suite mostly waits (on scale windows, pods, brokers), so sessions side by side (pytest-xdist, each
# with its own stack) finish sooner even on 2 cores; the tests needing the one real node share one session.
TEST_WORKERS ?= 3

test: lint ## everything: lint, then the whole pytest suite against the real local stack
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-fast: lint ## seconds: lint, then the tests that start no service (not marked `stack` or `slow`)
	$(VENV)/bin/pytest -q -m "not stack and not slow" $(PYTEST_ARGS)

demo: bootstrap ## the main job: stack, chart, operator, two QueueConsumers, a burst, live view, summary
	$(PY) -m devstack.demo $(DEMO_ARGS)

stack-up: bootstrap ## start the local stack in the background and print how to reach it
	$(PY) -m devstack up

stack-down: ## stop the local stack
	$(PY) -m devstack down

stack-status: ## what is running
	$(PY) -m devstack status

bench-worker: bootstrap ## worker throughput and memory, side by side with the references
	$(PY) -m benchmarks.bench_worker

bench-pod-memory: bootstrap ## PSS and RSS of a worker pod (per concurrency) and the operator pod, on the node
	$(PY) -m devstack.pod_memory $(MEMORY_ARGS)

bench-operator: bootstrap ## 500 QueueConsumers: operator CPU, RSS, API writes, reaction time
	$(PY) -m benchmarks.bench_operator

bench-simulator: bootstrap ## the checked-in traces through our scaler and KEDA + HPA defaults
	$(PY) -m benchmarks.bench_simulator

bench-keda: bootstrap ## ours beside the real KEDA + HPA on real pods, same messages; the simulator beside (~45 min)
	$(PY) -m devstack.keda
	$(PY) -m benchmarks.bench_keda $(BENCH_KEDA_ARGS)

manifests: bootstrap ## regenerate manifests/ from the Helm chart
	$(PY) -m devstack.manifests

scan: bootstrap ## configuration scan (checkov, offline) of the rendered chart and the Dockerfile
	$(VENV)/bin/pytest -q tests/chart/test_config_scan.py

dashboards: bootstrap ## regenerate the chart's Grafana dashboards (files/dashboards/) with Grafana's Python SDK
	$(PY) -m devstack.dashboards

clean:
	rm -rf .stack out .mypy_cache .ruff_cache .pytest_cache
