"""qc-worker: the data plane each worker pod runs, a concurrent pull / monitor / ack loop."""
