//go:build tools

// Package tools records the KEDA commands built for `make bench-keda` so `go mod tidy` keeps them.
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
