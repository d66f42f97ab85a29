"""Every error the operator expects from a reconcile or a tick, in one place.

Each class is a kind of failure a user can act on; `handlers` turns each into a condition reason and a
Warning Event. Anything else is an unexpected failure: logged, counted, retried at the next tick.
"""

from __future__ import annotations


class SpecError(ValueError):
    """The spec is valid for the schema but cannot be acted on; the message is shown in the status."""


class SecretError(ValueError):
    """A Secret or key the spec names does not exist, or cannot be read as text."""


class SourceError(Exception):
    """The backlog could not be read; the message says why (credentials never included)."""


class CountsPending(SourceError):
    """The source answers but has not counted the queue yet: RabbitMQ's management API lists a new queue
    without its message counts until the queue's first statistics refresh (~5 s). Unknown, not failed,
    for a while (`plan.COUNTS_PENDING_GRACE_SECONDS`)."""


class DeploymentMissing(Exception):
    """The worker Deployment is not there even after the operator tried to create it."""


class ServiceAccountMissing(Exception):
    """The ServiceAccount the spec names for the worker pods does not exist in the namespace."""


class OwnershipConflict(Exception):
    """An object with the name of one of ours exists and another owner controls it: never merged into."""


class ApiRejected(Exception):
    """The API server refused a write (invalid, or forbidden by RBAC or an admission policy)."""


# The Ready=False reason for each error that stops a reconcile or a tick. A SourceError does not stop a
# tick: the plan falls back and reports it in the SourceError condition instead.
READY_REASONS: dict[type[Exception], str] = {
    SpecError: "InvalidSpec",
    SecretError: "SecretMissing",
    DeploymentMissing: "DeploymentMissing",
    ServiceAccountMissing: "ServiceAccountMissing",
    OwnershipConflict: "Conflict",
    ApiRejected: "RejectedByAPIServer",
}


def ready_reason(error: BaseException) -> str | None:
    """The condition reason for an expected error; None for an unexpected one."""
    for kind in type(error).__mro__:
        if kind in READY_REASONS:
            return READY_REASONS[kind]
    return None
