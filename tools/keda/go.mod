// Pins KEDA's operator and metrics adapter, built for `make bench-keda` (see devstack/keda.py).
// The replace and the exclude are KEDA v2.21.0's own (a module's replace/exclude lines do not carry over to
// a module that requires it), and go.sum is KEDA's.
module github.com/queueconsumer/qc/tools/keda

go 1.26.0

require github.com/kedacore/keda/v2 v2.21.0

replace github.com/nexus-rpc/nexus-proto-annotations v0.1.0 => github.com/nexus-rpc/nexus-proto-annotations v0.1.1-0.20260629224316-835bd8d49cb4

exclude github.com/go-chi/chi/v5 v5.2.3
