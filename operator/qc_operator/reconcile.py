"""The operator's work for one QueueConsumer: make its children exist, and one scaling tick.

Invoked from `handlers`: `ensure_children` on create/update/resume, `Autoscaler.tick` from the
per-object daemon every polling interval. A tick is three steps: `observe` (every read: the Deployment,
Secrets, the backlog, the workers' metrics), the pure `plan.plan` (the target, the status and the Events),
and `apply` (every write: pod-deletion costs first, then the Deployment's scale, then the status).
What many QueueConsumers would each read every tick is read once for all of them (`Shared`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from qc_common import api
from qc_operator import budget, builders, plan, scaling, status
from qc_operator.errors import (
    CountsPending,
    DeploymentMissing,
    SecretError,
    ServiceAccountMissing,
    SourceError,
)
from qc_operator.http import JsonFetcher, request_timeout_seconds, scrape_workers
from qc_operator.kube import DeploymentState, Kube, check_owner
from qc_operator.metrics import OperatorMetrics
from qc_operator.sources.base import GoogleTokenSource
from qc_operator.sources.rabbitmq import QueueListings, RabbitMQBacklog
from qc_operator.spec import QueueConsumerSpec
from qc_operator.workers import ThroughputEstimator, summarize

log = logging.getLogger(__name__)
HASH = api.SPEC_HASH_ANNOTATION


@dataclass
class Shared:
    """What the operator reads once for many QueueConsumers: one per process, in kopf's memo."""

    listings: QueueListings = field(default_factory=QueueListings)  # RabbitMQ, one per broker and vhost


async def ensure_children(
    kube: Kube, body: dict[str, Any], spec: QueueConsumerSpec, current: DeploymentState | None = None
) -> DeploymentState:
    """Make what the workers need exist, and the Deployment's pod template what the spec says; returns
    the Deployment as it is (`current`: as watched, if it was). Raises OwnershipConflict for a same-named
    object someone else controls."""
    namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
    await kube.secret_values(namespace, spec.source.worker_secret_refs())  # fail early, with a condition
    named = spec.worker.service_account_name
    if named is None:
        await kube.ensure_exists(builders.service_account(body), uid)
    elif not await kube.service_account_exists(namespace, named):  # pods would fail to be created
        raise ServiceAccountMissing(f"ServiceAccount {named!r} (spec.worker.serviceAccountName) not found")
    await kube.ensure_exists(builders.metrics_service(body), uid)
    await kube.ensure_exists(builders.pod_disruption_budget(body), uid)
    await ensure_rate_share(kube, body, spec)
    return await ensure_deployment(kube, body, spec, current)


async def ensure_rate_share(kube: Kube, body: dict[str, Any], spec: QueueConsumerSpec) -> None:
    """With a rate limit, the pods' ConfigMap exists before the pods that mount it: the first share is
    the budget split among the replicas the Deployment starts with. Later shares are the ticks' to write."""
    rate = spec.worker.max_messages_per_second
    meta = body["metadata"]
    name = builders.rate_limit_name(meta["name"])
    if rate is None or await kube.config_map_value(meta["namespace"], name, api.RATE_LIMIT_KEY, meta["uid"]):
        return
    replicas = (body.get("status") or {}).get("desiredReplicas", spec.policy.min_replicas)
    share = budget.share_of(rate, int(replicas) if isinstance(replicas, int) else 1)
    await kube.apply_config_map(builders.rate_limit_config_map(body, budget.share_text(share)), meta["uid"])


def desired_deployment(body: dict[str, Any], spec: QueueConsumerSpec) -> dict[str, Any]:
    initial = (body.get("status") or {}).get("desiredReplicas", spec.policy.min_replicas)
    return builders.deployment(body, spec, int(initial) if isinstance(initial, int) else 0)


async def ensure_deployment(
    kube: Kube,
    body: dict[str, Any],
    spec: QueueConsumerSpec,
    current: DeploymentState | None = None,
    desired: dict[str, Any] | None = None,
) -> DeploymentState:
    """Create the Deployment, or replace its pod template when the spec's hash changed (`current`: the
    state as watched or just read, `desired`: what the spec builds, if the caller has them). Never touches
    the replicas of an existing Deployment. Without `current` it is created at once (a new QueueConsumer's
    has none: no read first), and read only if one of that name turns out to exist."""
    meta = body["metadata"]
    name = builders.worker_name(meta["name"])
    desired = desired or desired_deployment(body, spec)
    if current is None:
        created = await kube.create_deployment(desired)
        current = created or await kube.deployment_state(meta["namespace"], name)
        if current is None:
            raise DeploymentMissing(f"the worker Deployment {name!r} does not exist yet")
    check_owner("Deployment", name, current.controller_uid, meta["uid"])
    if current.spec_hash != desired["spec"]["template"]["metadata"]["annotations"][HASH]:
        await kube.replace_pod_template(current, desired)
    return current


@dataclass
class Autoscaler:
    """One QueueConsumer's scaling loop and its memory between ticks (kept by the handler's daemon)."""

    kube: Kube
    session: aiohttp.ClientSession
    metrics: OperatorMetrics
    google_tokens: GoogleTokenSource
    # The worker Deployments as the operator's watch last saw them (namespace, name) -> state; None: read.
    watched: Callable[[str, str], DeploymentState | None] | None = None
    state: scaling.ScalingState | None = None
    last_status: status.ConsumerStatus | None = None
    estimator: ThroughputEstimator = field(default_factory=ThroughputEstimator)
    # Wall-clock time minus monotonic time, fixed for the process: the status's times then do not jitter
    # from tick to tick (a jitter would change the status, and cost a write, at steady state).
    wall_offset_seconds: float = field(default_factory=lambda: time.time() - time.monotonic())
    hash_for: tuple[Any, str] | None = None  # (generation, the pod template hash its spec builds)
    shared: Shared | None = None  # None: every read is this QueueConsumer's own
    counts_pending_since: float | None = None  # since when the source has answered without counts

    async def tick(self, body: dict[str, Any], spec: QueueConsumerSpec) -> tuple[plan.Event, ...]:
        """One observe -> plan -> apply; returns the Events to post."""
        meta = body["metadata"]
        raw_status = body.get("status") or {}
        if self.last_status is None:  # first tick, or the status was written by someone else since
            self.last_status = status.ConsumerStatus.from_dict(raw_status)
        observed = await self.observe(body, spec)
        now = time.monotonic()
        if self.state is None:  # the first tick after a (re)start continues from what the status recorded
            recorded = status.decode_state(raw_status.get("scalingState"), now, time.time())
            self.state = scaling.resumed_state(recorded, spec.policy, observed.replicas, now)
        the_plan = plan.plan(
            spec, observed, self.state, self.last_status, now, time.time(), status.now_rfc3339()
        )
        await self.apply(meta["namespace"], meta["name"], spec, the_plan, body)
        self.state = the_plan.state
        return the_plan.events

    def _wanted_hash(self, body: dict[str, Any], spec: QueueConsumerSpec) -> str:
        """The pod template hash the spec builds, once per generation (a tick would otherwise build and
        hash the template every interval); only the hash is kept, not the Deployment built for it."""
        generation = body["metadata"].get("generation")
        if self.hash_for is None or self.hash_for[0] != generation:
            desired = desired_deployment(body, spec)
            self.hash_for = (generation, desired["spec"]["template"]["metadata"]["annotations"][HASH])
        return self.hash_for[1]

    async def observe(self, body: dict[str, Any], spec: QueueConsumerSpec) -> plan.Observed:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        # Every tick: the Deployment is there, ours, and shaped by the current spec (one read; a write
        # only when something differs), so a Deployment deleted or edited by hand comes back.
        worker_name = builders.worker_name(name)
        # From the watch when it has it (no API read per tick), else from the API.
        deployment = self.watched(namespace, worker_name) if self.watched else None
        if deployment is None and self.watched is not None:
            # Not watched: missing, or not made because a Secret is (Ready=False, every tick). That is
            # checked first, from the cache, so such a QueueConsumer costs no API read per tick.
            refs = spec.source.worker_secret_refs()
            await self.kube.secret_values(namespace, refs, max_age_seconds=spec.polling_interval_seconds)
        deployment = deployment or await self.kube.deployment_state(namespace, worker_name)
        if deployment is None:  # deleted by someone, or not created yet: heal all the children
            deployment = await ensure_children(self.kube, body, spec)
        elif deployment.spec_hash == self._wanted_hash(body, spec):
            check_owner("Deployment", worker_name, deployment.controller_uid, meta["uid"])
        else:
            deployment = await ensure_deployment(self.kube, body, spec, deployment)

        reading, source_error, pending = None, "", False
        self.metrics.series_for(namespace, name, spec.backlog.backlog_kind)
        try:
            # Read at most once per interval, and once for all the consumers naming the same Secret.
            refs, interval = spec.backlog.secret_refs(), spec.polling_interval_seconds
            secrets = await self.kube.secret_values(namespace, refs, max_age_seconds=interval)
            reader = spec.backlog.reader(secrets, self.google_tokens)
            if self.shared is not None and isinstance(reader, RabbitMQBacklog):
                reader = reader.shared(self.shared.listings, spec.polling_interval_seconds)
            started = time.monotonic()
            try:
                timeout = request_timeout_seconds(spec.polling_interval_seconds)
                reading = await reader.read(JsonFetcher(self.session, timeout))
            finally:
                self.metrics.source_read(namespace, name, time.monotonic() - started)
        except (SourceError, SecretError) as error:
            source_error = str(error)
            self.metrics.source_failed(namespace, name)
            pending = isinstance(error, CountsPending)
        if not pending:
            self.counts_pending_since = None
        elif self.counts_pending_since is None:
            self.counts_pending_since = time.monotonic()

        # A fleet at zero with no pods left has nothing to scrape: skip the list (most consumers, most ticks).
        pods = await self.kube.worker_pods(namespace, name) if deployment.replicas or deployment.pods else []
        endpoints = {p.name: p.metrics_url for p in pods if p.metrics_url and not p.terminating}
        share_text = None
        if spec.worker.max_messages_per_second is not None:  # what the pods' ConfigMap says now
            share_name = builders.rate_limit_name(name)
            share_text = await self.kube.config_map_value(
                namespace, share_name, api.RATE_LIMIT_KEY, meta["uid"]
            )
        samples = await scrape_workers(self.session, endpoints) if endpoints else {}
        workers = summarize(samples, self.estimator, time.monotonic())
        return plan.Observed(
            generation=meta.get("generation"),
            annotations=meta.get("annotations") or {},
            replicas=deployment.replicas,
            ready_replicas=deployment.ready_replicas,
            reading=reading,
            source_error=source_error,
            workers=workers,
            known_deletion_costs={p.name: p.deletion_cost for p in pods},
            pods_present=len(pods),
            rate_share_text=share_text,
            counts_pending_seconds=None
            if self.counts_pending_since is None
            else time.monotonic() - self.counts_pending_since,
        )

    async def apply(
        self, namespace: str, name: str, spec: QueueConsumerSpec, the_plan: plan.Plan, body: dict[str, Any]
    ) -> None:
        # The share first: a scale-out waits for the pods to report the lowered one (`budget`), and new pods
        # start with what the ConfigMap holds.
        if the_plan.write_rate_share and the_plan.rate_share_text is not None:
            config_map = builders.rate_limit_config_map(body, the_plan.rate_share_text)
            await self.kube.apply_config_map(config_map, body["metadata"]["uid"])
        # Idle pods first: the costs are set before the ReplicaSet picks which pods to delete.
        for pod, cost in the_plan.deletion_costs.items():
            await self.kube.set_deletion_cost(namespace, pod, cost)
        if the_plan.scales:
            await self.kube.scale(namespace, builders.worker_name(name), the_plan.target)
            self.metrics.scaled(namespace, name, spec, the_plan)
            log.info("%s/%s: %s", namespace, name, the_plan.status.last_scale_reason)
        self.metrics.record(namespace, name, spec, the_plan)
        if the_plan.write_status:
            await self.kube.patch_status(namespace, name, the_plan.status.to_patch())
            self.last_status = the_plan.status
