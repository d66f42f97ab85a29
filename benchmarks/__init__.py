"""Benchmarks, run as modules from the repository root: `make bench-*` (python -m benchmarks.<name>)."""
