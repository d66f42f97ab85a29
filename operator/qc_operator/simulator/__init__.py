"""The scaling simulator: replay an arrival trace through a queue model driven by the operator's own
`scaling.decide` and, side by side, by a model of KEDA + HPA v2 with their documented defaults."""
