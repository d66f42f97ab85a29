"""API coordinates of the QueueConsumer custom resource and the keys stamped on what the operator owns."""

from typing import Final

GROUP: Final = "queueconsumer.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "QueueConsumer"
PLURAL: Final = "queueconsumers"
SINGULAR: Final = "queueconsumer"
SHORT_NAME: Final = "qc"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Labels on every object the operator owns and on the worker pods; the Deployment selects on CONSUMER_LABEL.
CONSUMER_LABEL: Final = f"{GROUP}/consumer"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
WORKER_COMPONENT: Final = "worker"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "queue-consumer-operator"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"

# Annotations users put on a QueueConsumer.
# "true": freeze the replica count where it is; no scaling decisions are applied.
PAUSED_ANNOTATION: Final = f"{GROUP}/paused"
# An integer: hold the Deployment at exactly this many replicas.
PAUSED_REPLICAS_ANNOTATION: Final = f"{GROUP}/paused-replicas"

# Kubernetes' own annotation: the ReplicaSet controller deletes pods with the lowest cost first.
POD_DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"
# Annotation on the pod template recording a hash of the spec that shaped it (a change rolls the pods).
SPEC_HASH_ANNOTATION: Final = f"{GROUP}/spec-hash"

# The ConfigMap holding each worker pod's share of spec.worker.maxMessagesPerSecond: its key (one number,
# messages/s; "" for none), and where the pods mount it (the file is $QC_RATE_LIMIT_FILE).
RATE_LIMIT_KEY: Final = "messages-per-second"
RATE_LIMIT_MOUNT_PATH: Final = "/etc/queue-consumer/rate-limit"

# The port name and path of the worker's metrics endpoint on each pod.
WORKER_METRICS_PORT_NAME: Final = "metrics"
WORKER_METRICS_PORT: Final = 9100
WORKER_METRICS_PATH: Final = "/metrics"
# Optional pod annotation overriding the port the operator scrapes a worker's metrics on. Real pods never
# need it (each pod has its own IP); the local kubelet stand-in runs every worker on 127.0.0.1 and sets it.
METRICS_PORT_ANNOTATION: Final = f"{GROUP}/metrics-port"

# Label users put on a QueueConsumer to pin it to one operator shard (its index, "0", "1", ...); without
# it the shard comes from a hash of the object's uid. Moving the label moves the QueueConsumer.
SHARD_LABEL: Final = f"{GROUP}/shard"
