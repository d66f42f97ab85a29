"""qc-worker: the data plane each worker pod runs, a concurrent pull / monitor / ack loop.

The public API for task authors is re-exported here: `task`, `Message`, `MalformedMessage`.
"""

from qc_worker.messages import MalformedMessage, Message
from qc_worker.tasks import task

__all__ = ["MalformedMessage", "Message", "task"]
