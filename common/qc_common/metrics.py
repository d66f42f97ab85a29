"""Prometheus metric names: exported by workers and operator; read by the operator, dashboards and alerts.

Names follow Prometheus conventions: one prefix per side, base units (seconds, ratios 0-1), counters end in
`_total`. Label values are low-cardinality (source kind, task name, reason, namespace, consumer name).
"""

from typing import Final

WORKER_PREFIX: Final = "qc_worker"
OPERATOR_PREFIX: Final = "qc_operator"

# --- worker (data plane) ---
WORKER_MESSAGES_RECEIVED: Final = f"{WORKER_PREFIX}_messages_received_total"
WORKER_MESSAGES_ACKED: Final = f"{WORKER_PREFIX}_messages_acked_total"
WORKER_MESSAGES_NACKED: Final = f"{WORKER_PREFIX}_messages_nacked_total"
WORKER_MESSAGES_RETRIED: Final = f"{WORKER_PREFIX}_messages_retried_total"
WORKER_MESSAGES_DEAD_LETTERED: Final = f"{WORKER_PREFIX}_messages_dead_lettered_total"  # label: reason
WORKER_TASKS_FAILED: Final = f"{WORKER_PREFIX}_tasks_failed_total"  # label: reason
WORKER_TIME_LIMIT_KILLS: Final = f"{WORKER_PREFIX}_time_limit_kills_total"
WORKER_LEASE_EXTENSIONS: Final = f"{WORKER_PREFIX}_lease_extensions_total"
# Receives that came back with nothing while the worker had free slots: the queue had nothing to give
# then. Fresh where a backlog metric may be minutes old; never counted for a receive that failed.
WORKER_EMPTY_RECEIVES: Final = f"{WORKER_PREFIX}_empty_receives_total"
WORKER_TASKS_IN_FLIGHT: Final = f"{WORKER_PREFIX}_tasks_in_flight"
WORKER_CAPACITY: Final = f"{WORKER_PREFIX}_capacity_tasks"
WORKER_BUSY_RATIO: Final = f"{WORKER_PREFIX}_busy_ratio"
# The busy ratio integrated over time (seconds of the whole capacity busy): its rise between two scrapes
# over their distance is the interval's mean busy fraction, where two readings of the ratio are two instants.
WORKER_BUSY_SECONDS: Final = f"{WORKER_PREFIX}_busy_seconds_total"
WORKER_TASK_DURATION: Final = f"{WORKER_PREFIX}_task_duration_seconds"  # histogram
WORKER_RECEIVE_TO_ACK: Final = f"{WORKER_PREFIX}_receive_to_ack_seconds"  # histogram
WORKER_LAST_SUCCESS: Final = f"{WORKER_PREFIX}_last_success_timestamp_seconds"
# The pod's share of spec.worker.maxMessagesPerSecond it enforces now (0: no share); the operator waits for
# the running pods to report a lowered share before it adds replicas.
WORKER_RATE_SHARE: Final = f"{WORKER_PREFIX}_rate_share_messages_per_second"

# --- operator (control plane); labels: namespace, consumer ---
OPERATOR_BACKLOG: Final = f"{OPERATOR_PREFIX}_backlog_messages"
OPERATOR_OLDEST_MESSAGE_AGE: Final = f"{OPERATOR_PREFIX}_oldest_message_age_seconds"
OPERATOR_DESIRED_REPLICAS: Final = f"{OPERATOR_PREFIX}_desired_replicas"
OPERATOR_CURRENT_REPLICAS: Final = f"{OPERATOR_PREFIX}_current_replicas"
OPERATOR_READY_REPLICAS: Final = f"{OPERATOR_PREFIX}_ready_replicas"
OPERATOR_MAX_REPLICAS: Final = f"{OPERATOR_PREFIX}_max_replicas"
# The spec's scaling.targetDrainSeconds, for dashboards to set the drain-time estimate against.
OPERATOR_TARGET_DRAIN: Final = f"{OPERATOR_PREFIX}_target_drain_seconds"
OPERATOR_THROUGHPUT: Final = f"{OPERATOR_PREFIX}_throughput_messages_per_second"
# labels: direction (up, down), reason (one of qc_operator.metrics.SCALE_REASONS, the sentence's kind)
OPERATOR_SCALE_EVENTS: Final = f"{OPERATOR_PREFIX}_scale_events_total"
OPERATOR_SOURCE_ERRORS: Final = f"{OPERATOR_PREFIX}_source_errors_total"  # label: source
OPERATOR_SOURCE_LATENCY: Final = f"{OPERATOR_PREFIX}_source_request_duration_seconds"  # histogram
OPERATOR_RECONCILES: Final = f"{OPERATOR_PREFIX}_reconciles_total"  # label: result
OPERATOR_FALLBACK_ACTIVE: Final = f"{OPERATOR_PREFIX}_fallback_active"
OPERATOR_PAUSED: Final = f"{OPERATOR_PREFIX}_paused"
# 1 while the workers fail so many tasks that scale-up is held back (scaling.downstreamProtection).
OPERATOR_DOWNSTREAM_FAILING: Final = f"{OPERATOR_PREFIX}_downstream_failing"
