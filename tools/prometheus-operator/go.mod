// Pins the Prometheus Operator whose CRDs (ServiceMonitor, PodMonitor, PrometheusRule, ...) the chart tests
// install on the local apiserver (see devstack/prometheus_operator.py). Only the module's files are read
// (example/prometheus-operator-crd/*.yaml); nothing is built from it.
module github.com/queueconsumer/qc/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
