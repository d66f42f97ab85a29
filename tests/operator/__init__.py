"""Operator tests; operator_harness holds their shared helpers (also used by tests/chart)."""
