//go:build tools

// Package tools records the helm command built for the chart tests so `go mod tidy` keeps it.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
