"""`qc-operator convert`: KEDA ScaledObjects (rabbitmq, gcp-pubsub, prometheus triggers) and the
Deployments they scale -> QueueConsumers, with a comment for everything that has no equivalent.

Pure, like the rest of the operator's decisions: `consumer.convert_all` takes the parsed YAML documents and
returns plain dicts and notes, `render.render` writes them out; `__main__` does the reading and printing.
One module per trigger type (`rabbitmq`, `pubsub`, `prometheus`), the worker from the Deployment
(`workload`), the scaling settings and pause annotations (`policy`), parameter resolution (`params`).
"""
