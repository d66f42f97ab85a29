"""Environment variables the operator sets on worker containers and the worker reads at start-up.

Each worker setting is also a `qc-worker` flag; the variable is the flag's name upper-cased with a `QC_`
prefix. Names only: defaults and parsing belong to `qc_worker.settings`.
"""

from typing import Final

TASK: Final = "QC_TASK"  # "package.module:function"
SOURCE: Final = "QC_SOURCE"  # "pubsub" | "rabbitmq"
CONCURRENCY: Final = "QC_CONCURRENCY"  # tasks in flight per pod
TASK_TIME_LIMIT_SECONDS: Final = "QC_TASK_TIME_LIMIT_SECONDS"
MAX_DELIVERY_ATTEMPTS: Final = "QC_MAX_DELIVERY_ATTEMPTS"
DRAIN_GRACE_SECONDS: Final = "QC_DRAIN_GRACE_SECONDS"
METRICS_PORT: Final = "QC_METRICS_PORT"
LOG_LEVEL: Final = "QC_LOG_LEVEL"
EVENT_LOOP: Final = "QC_EVENT_LOOP"  # "uvloop" (the default) or "asyncio": the worker's event loop
RETRY_BACKOFF_MIN_SECONDS: Final = "QC_RETRY_BACKOFF_MIN_SECONDS"
RETRY_BACKOFF_MAX_SECONDS: Final = "QC_RETRY_BACKOFF_MAX_SECONDS"
RATE_LIMIT_FILE: Final = "QC_RATE_LIMIT_FILE"  # the pod's share of the fleet's messages/s (a ConfigMap file)
MAX_TASKS_PER_CHILD: Final = "QC_MAX_TASKS_PER_CHILD"  # pool process replaced after N tasks (0: never)
MAX_MEMORY_PER_CHILD_MIB: Final = "QC_MAX_MEMORY_PER_CHILD_MIB"  # ... or above M MiB resident (0: never)
TRACING: Final = (
    "QC_TRACING"  # "true": OpenTelemetry spans per task attempt (OTEL_* variables configure them)
)

PUBSUB_PROJECT: Final = "QC_PUBSUB_PROJECT"
PUBSUB_SUBSCRIPTION: Final = "QC_PUBSUB_SUBSCRIPTION"
PUBSUB_DEAD_LETTER_TOPIC: Final = "QC_PUBSUB_DEAD_LETTER_TOPIC"
LEASE_SECONDS: Final = "QC_LEASE_SECONDS"  # ack-deadline extension per renewal
MAX_LEASE_SECONDS: Final = "QC_MAX_LEASE_SECONDS"

RABBITMQ_URL: Final = "QC_RABBITMQ_URL"  # from a Secret, never logged
RABBITMQ_QUEUE: Final = "QC_RABBITMQ_QUEUE"
RABBITMQ_DEAD_LETTER_EXCHANGE: Final = "QC_RABBITMQ_DEAD_LETTER_EXCHANGE"
RABBITMQ_DECLARE_QUEUE: Final = (
    "QC_RABBITMQ_DECLARE_QUEUE"  # "true": declare the queue; default: it must exist
)
RABBITMQ_QUEUE_ARGUMENTS: Final = (
    "QC_RABBITMQ_QUEUE_ARGUMENTS"  # JSON object, e.g. {"x-queue-type": "quorum"}
)
RABBITMQ_PREFETCH_EXTRA: Final = "QC_RABBITMQ_PREFETCH_EXTRA"  # delivered beyond the window
RABBITMQ_CA_FILE: Final = "QC_RABBITMQ_CA_FILE"  # PEM: the CA that signs the broker (amqps://)
RABBITMQ_CLIENT_CERT_FILE: Final = "QC_RABBITMQ_CLIENT_CERT_FILE"  # PEM: a client certificate, if wanted
RABBITMQ_CLIENT_KEY_FILE: Final = "QC_RABBITMQ_CLIENT_KEY_FILE"  # PEM: its private key
RABBITMQ_SERVER_NAME: Final = "QC_RABBITMQ_SERVER_NAME"  # the name the broker's certificate carries

# Read by Google's client libraries themselves: the emulator's address; a service-account key file.
PUBSUB_EMULATOR_HOST: Final = "PUBSUB_EMULATOR_HOST"
GOOGLE_APPLICATION_CREDENTIALS: Final = "GOOGLE_APPLICATION_CREDENTIALS"
