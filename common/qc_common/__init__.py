"""The contract the control plane (qc_operator) and the data plane (qc_worker) share.

Only names live here: the custom resource's API coordinates, label and annotation keys, the environment
variables the operator sets on worker pods, and the metric names the workers export and the operator, the
dashboards and the alert rules read. Neither side imports the other; both import this.
"""
