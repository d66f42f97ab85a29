"""The kopf handlers: thin functions that check guards and delegate to `reconcile`.

Registered on import (kopf's default registry); `qc-operator run` and the tests' KopfRunner import this
module. One daemon per QueueConsumer runs the scaling loop at the spec's polling interval. Every failure
is classified here (`errors.ready_reason`): an expected one becomes Ready=False with its reason and one
Warning Event per change; an unexpected one is logged and counted, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf

from qc_common import api
from qc_operator import allocator, builders, errors, kept_body, quiet_logs, sharding, status
from qc_operator import spec as spec_module
from qc_operator.kube import DeploymentState, Kube, make_api_client
from qc_operator.metrics import OperatorMetrics, serve
from qc_operator.reconcile import Autoscaler, ensure_children
from qc_operator.settings import OperatorSettings
from qc_operator.state import OperatorState

log = logging.getLogger(__name__)
RESOURCE = (api.GROUP, api.VERSION, api.PLURAL)
Logger = logging.Logger | logging.LoggerAdapter[Any]
ANNOTATION_PREFIX = api.GROUP
DIFF_BASE_KEY = "last-handled-configuration"  # kopf's own default, named here for `handled_before`
FIRST_TICK_INTERVAL_SECONDS = 5.0  # before the spec could be parsed for its own polling interval
# A new QueueConsumer's first tick waits for its create handler at most this long.
CHILDREN_WAIT_LIMIT_SECONDS = 120.0
# The watch handlers below whose every success kopf would log (`quiet_logs`).
QUIET_WATCH_HANDLERS = ("compact_kept_body", "recreate_deleted_child")


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: Logger, **_: Any) -> None:
    # Progress and diff-base in annotations: the status belongs to the resource's users.
    allocator.limit_arenas()  # before the first API call starts a thread: see `allocator`
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key=DIFF_BASE_KEY
    )
    settings.posting.level = logging.WARNING  # our own Events say what happened; no event per log line
    quiet_logs.install(QUIET_WATCH_HANDLERS)
    settings.watching.server_timeout = 300
    own = OperatorSettings.from_environment()
    settings.peering.lifetime = own.peering_lifetime_seconds
    settings.peering.stealth = True  # no log line per heartbeat
    shard = sharding.Shard(own.shard_index, own.shard_count)
    metrics = OperatorMetrics()
    metrics_server = await serve(metrics.registry, own.metrics_port)
    session = aiohttp.ClientSession()
    trimmer = asyncio.create_task(allocator.trim_periodically())
    kube = Kube(make_api_client(own.kubeconfig))
    memo.state = OperatorState(own, shard, kube, session, metrics, metrics_server, trimmer)
    logger.info("metrics on :%d/metrics", own.metrics_port)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Read $KUBECONFIG now, not when the kubernetes client was imported; in a pod, the service account.
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    info = kopf.login_with_service_account(**kwargs)
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if info is not None and host and port:
        # kopf dials https://kubernetes.default.svc, which needs cluster DNS; like client-go's in-cluster
        # config (and our kube.py), use the address the kubelet puts in every pod's environment.
        host = f"[{host}]" if ":" in host else host
        info = dataclasses.replace(info, server=f"https://{host}:{port}")
    return info


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.state.trimmer.cancel()
    await memo.state.session.close()
    await memo.state.metrics_server.cleanup()


async def report_not_ready(memo: kopf.Memo, body: kopf.Body, reason: str, message: str) -> None:
    """Bad input or a missing piece: Ready=False and a Warning Event, once per change; no scaling.

    The create handler and the daemon may both report one failure, and the body either sees can be a
    moment stale: what was reported is remembered here too, so it is written and posted once."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    if memo.state.not_ready.get(key) == (reason, message):
        return
    memo.state.not_ready[key] = (reason, message)
    log.warning("%s/%s: not ready (%s): %s", *key, reason, message)  # once per change, not per tick
    previous = status.ConsumerStatus.from_dict(body.get("status"))
    before = [c for c in previous.conditions if c.type == "Ready"]
    wanted = status.merge_conditions(
        before, [status.Condition("Ready", False, reason, message)], status.now_rfc3339()
    )
    if list(wanted) != before:
        others = [c.to_dict() for c in previous.conditions if c.type != "Ready"]
        meta = body["metadata"]
        conditions = [c.to_dict() for c in wanted] + others
        try:
            await memo.state.kube.patch_status(meta["namespace"], meta["name"], {"conditions": conditions})
        except Exception:
            memo.state.not_ready.pop(key, None)  # not written: the next attempt reports it again
            raise
        kopf.warn(body, reason=reason, message=message)


def owned(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """Whether this operator's shard owns the QueueConsumer (always, unsharded): the filter of every
    QueueConsumer handler. When its label moves it to another shard, kopf stops its daemon here, and the
    other shard's operator starts one."""
    shard: sharding.Shard = memo.state.shard
    return shard.owns(body["metadata"]["uid"], body["metadata"].get("labels") or {})


@kopf.on.resume(*RESOURCE, when=owned)
@kopf.on.create(*RESOURCE, when=owned)
@kopf.on.update(*RESOURCE, field="spec", when=owned)
async def reconcile_children(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    try:
        async with memo.state.first_handling:  # see state.FIRST_HANDLING_CONCURRENCY
            await ensure_children_of(body, memo, kwargs["worker_deployments"])
    finally:
        # Only a creation's first tick waits for this (`wait_for_children`): kopf resumes only what it
        # handled before, whose daemon does not wait, and an Event set for it would stay until deletion.
        if kwargs.get("reason") == "create":
            memo.state.children_handled.setdefault(body["metadata"]["uid"], asyncio.Event()).set()


async def ensure_children_of(
    body: kopf.Body, memo: kopf.Memo, worker_deployments: kopf.Index[tuple[str, str], DeploymentState]
) -> None:
    plain = plain_body(body)
    problem = sharding.label_problem(body["metadata"].get("labels") or {}, memo.state.shard.count)
    if problem:
        kopf.warn(body, reason="ShardLabelInvalid", message=problem)
    name = builders.worker_name(plain["metadata"]["name"])
    # As watched: a new QueueConsumer's Deployment is created without a read first, an existing one is
    # compared without a read (kopf fills its indexes before it calls a handler).
    watched = latest(worker_deployments, plain["metadata"]["namespace"], name)
    try:
        await ensure_children(memo.state.kube, plain, spec_module.parse(plain["spec"]), watched)
    except Exception as error:
        reason = errors.ready_reason(error)
        if reason is None:
            raise  # kopf retries unexpected failures with its backoff
        await report_not_ready(memo, body, reason, str(error))


@kopf.on.event(*RESOURCE)
async def compact_kept_body(event: kopf.RawEvent, **_: Any) -> None:
    """Makes the body kopf keeps for a QueueConsumer's daemon smaller (`kept_body`): kopf's view shares
    this event's object. Async: a sync handler would cost a thread hop per event."""
    kept_body.compact(event.get("object"))


OWNED = {api.MANAGED_BY_LABEL: api.MANAGED_BY_VALUE}


@kopf.index("apps", "v1", "deployments", labels=OWNED)
def worker_deployments(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], DeploymentState]:
    """The worker Deployments as watched: a tick reads its Deployment here, not from the API (a read per
    QueueConsumer per interval is most of what an idle operator would otherwise do)."""
    return {(namespace or "", name): DeploymentState.from_body(body)}


def latest(
    index: kopf.Index[tuple[str, str], DeploymentState], namespace: str, name: str
) -> DeploymentState | None:
    store = index.get((namespace, name))
    return next(iter(store), None) if store is not None else None


async def pause(stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Until the next tick, or until kopf stops the daemon.

    Not `stopped.wait(seconds)`: kopf waits for that in a task of its own under asyncio.wait_for, and on
    Python 3.11 a shutdown that cancels that task as its time runs out leaves it failed with TimeoutError,
    which kopf then re-raises as the operator's own failure. asyncio.wait has no such race.
    """
    waiter = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


def plain_body(body: kopf.Body) -> dict[str, Any]:
    """A tick's own copy of the body, without metadata.managedFields: the largest part of the body, read
    by nothing here, and copied 5,000 times per interval in a large operator."""
    meta = {key: value for key, value in body["metadata"].items() if key != "managedFields"}
    return copy.deepcopy({**dict(body), "metadata": meta})


async def wait_for_children(memo: kopf.Memo, body: kopf.Body, present: Callable[[], bool]) -> None:
    """Before a new QueueConsumer's first tick: wait until the create handler is done with its children,
    at most CHILDREN_WAIT_LIMIT_SECONDS. Thousands created at once queue up in kopf; a tick before their
    handler would make the children too, doubling the API calls. No wait when the Deployment is watched,
    or the QueueConsumer was handled before (by this or another shard's operator: moved here by its
    label): no handler is coming then. Woken by the handler (an Event, not a poll: thousands wait)."""
    uid = body["metadata"]["uid"]
    if not present() and not handled_before(body):
        handled = memo.state.children_handled.setdefault(uid, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handled.wait(), CHILDREN_WAIT_LIMIT_SECONDS)
    memo.state.children_handled.pop(uid, None)


def handled_before(body: kopf.Body) -> bool:
    """Whether kopf's create (or resume) handling finished on this QueueConsumer once: it then left the
    spec it handled in an annotation (`start`: the diff-base storage)."""
    return f"{ANNOTATION_PREFIX}/{DIFF_BASE_KEY}" in (body["metadata"].get("annotations") or {})


@dataclasses.dataclass
class Ticker:
    """One QueueConsumer's loop state between ticks, besides its Autoscaler's."""

    autoscaler: Autoscaler
    parsed_for: tuple[Any, spec_module.QueueConsumerSpec] | None = None  # (generation, its parsed spec)
    last_unexpected: str = ""  # an unexpected error is logged in full once, again only when it changes

    async def tick(self, body: kopf.Body, memo: kopf.Memo, logger: Logger) -> float:
        """One tick; returns the seconds until the next. Its copy of the body is gone once it returns
        (a local of the daemon's loop would keep one per QueueConsumer through every pause)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        plain = plain_body(body)
        try:
            # Parsed once per generation (the spec changes only with it), not on every tick.
            generation = plain["metadata"].get("generation")
            if self.parsed_for is None or self.parsed_for[0] != generation:
                self.parsed_for = (generation, spec_module.parse(plain["spec"]))
            parsed = self.parsed_for[1]
            for event in await self.autoscaler.tick(plain, parsed):
                kopf.event(body, type=event.type, reason=event.reason, message=event.message)
            memo.state.not_ready.pop((namespace, name), None)  # the tick wrote Ready=True
            memo.state.metrics.reconciled(namespace, name, "ok")
            self.last_unexpected = ""
            return parsed.polling_interval_seconds
        except Exception as error:  # never the end of the loop
            reason = errors.ready_reason(error)
            if reason is not None:
                memo.state.metrics.reconciled(namespace, name, "invalid")
                self.autoscaler.last_status = None  # Ready=False is written: compare with the status anew
                try:
                    await report_not_ready(memo, body, reason, str(error))
                except Exception:  # an API hiccup while reporting: the next tick reports it again
                    logger.exception("could not report %s", reason)
            else:  # an API hiccup: counted, retried next tick
                memo.state.metrics.reconciled(namespace, name, "error")
                if repr(error) != self.last_unexpected:
                    logger.exception("scaling tick failed (logged again only when the error changes)")
                self.last_unexpected = repr(error)
        return self.parsed_for[1].polling_interval_seconds if self.parsed_for else FIRST_TICK_INTERVAL_SECONDS


@kopf.daemon(*RESOURCE, cancellation_timeout=10, when=owned)
async def scale(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Logger, **kwargs: Any
) -> None:
    worker_deployments: kopf.Index[tuple[str, str], DeploymentState] = kwargs["worker_deployments"]
    ticker = Ticker(
        Autoscaler(
            memo.state.kube,
            memo.state.session,
            memo.state.metrics,
            memo.state.google_tokens,
            watched=lambda namespace, name: latest(worker_deployments, namespace, name),
            shared=memo.state.shared,
        )
    )
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    worker_name = builders.worker_name(name)
    watched = lambda: latest(worker_deployments, namespace, worker_name) is not None  # noqa: E731
    await wait_for_children(memo, body, watched)
    loop = asyncio.get_running_loop()
    started, seconds = loop.time(), 0.0
    if not stopped:
        async with memo.state.first_handling:  # see state.FIRST_HANDLING_CONCURRENCY
            seconds = await ticker.tick(body, memo, logger)
    while not stopped:
        # The interval runs from one tick's start to the next: a tick that waited (for a shared listing of
        # thousands of queues, say) does not push every later tick back by its own length.
        await pause(stopped, max(0.0, started + seconds - loop.time()))
        if not stopped:
            started = loop.time()
            seconds = await ticker.tick(body, memo, logger)
    memo.state.children_handled.pop(body["metadata"]["uid"], None)  # handled after the wait ended
    if not owned(body, memo):  # moved to another shard, whose operator reports it from now on
        memo.state.metrics.forget(namespace, name)
        memo.state.not_ready.pop((namespace, name), None)


def controlling_consumer(body: kopf.Body) -> str | None:
    """The name of the QueueConsumer controlling a child, from its ownerReferences."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == api.KIND and ref.get("apiVersion") == api.API_VERSION:
            return str(ref.get("name"))
    return None


# A child deleted by hand comes back at once (the tick re-creates the Deployment itself): watched, not
# polled, so a steady state costs no reads. Only objects carrying our managed-by label are looked at.


@kopf.on.event("v1", "serviceaccounts", labels=OWNED)
@kopf.on.event("v1", "services", labels=OWNED)
@kopf.on.event("policy/v1", "poddisruptionbudgets", labels=OWNED)
async def recreate_deleted_child(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    consumer = controlling_consumer(body) if event.get("type") == "DELETED" else None
    if consumer is None:
        return
    owner = await memo.state.kube.queue_consumer(body["metadata"]["namespace"], consumer)
    if owner is None or owner["metadata"].get("deletionTimestamp"):
        return  # the QueueConsumer is going: its children go with it
    if not memo.state.shard.owns(owner["metadata"]["uid"], owner["metadata"].get("labels") or {}):
        return  # another shard's
    try:
        await ensure_children(memo.state.kube, owner, spec_module.parse(owner.get("spec") or {}))
    except Exception as error:
        if errors.ready_reason(error) is None:
            raise
        # An expected failure is reported by the QueueConsumer's own handlers and daemon.


@kopf.on.delete(*RESOURCE, optional=True, when=owned)
async def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # No finalizer (optional=True): deletion never waits for the operator; children go by ownerReferences.
    memo.state.metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])
    memo.state.not_ready.pop((body["metadata"]["namespace"], body["metadata"]["name"]), None)
    memo.state.children_handled.pop(body["metadata"]["uid"], None)
