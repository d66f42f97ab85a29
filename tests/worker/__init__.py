"""Worker tests; worker_harness runs real `qc-worker` processes, worker_tasks holds the tasks they run."""
