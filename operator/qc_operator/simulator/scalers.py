"""The two autoscalers compared: ours (the operator's real `scaling.decide`) and KEDA + HPA v2.

Both see the same lagged backlog. Ours also reads what the operator scrapes from the worker pods, which is
fresh: work in flight, the summed busy fractions, and whether a worker found the queue empty since the
previous decision (its empty-receive counter rose between two scrapes); it learns the throughput from
those scrapes with the operator's own estimator. KEDA + HPA uses the
documented defaults: KEDA polls activity every 30 s, scales 0 -> 1 above the activation value (0) and back
to 0 after cooldownPeriod 300 s; the HPA syncs every 15 s with tolerance 0.1 on an AverageValue target,
scale-up max(4 pods, 100%) per 15 s and scale-down stabilization 300 s at 100% per 15 s. The HPA arithmetic
is `scaling.decide` under `scaling.hpa_compatible` (tests/scaling/test_hpa_conformance.py checks it against
the HPA's own test tables): the behaviour an HPA gets from `behavior` at its default values. KEDA's 0 <-> 1
sits on top, as in a cluster, and the HPA keeps its memory while KEDA holds the fleet at zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol

from qc_operator import scaling, schema
from qc_operator.spec import DownstreamProtection
from qc_operator.workers import PodSample, ThroughputEstimator, WorkerStats

KEDA_POLLING_INTERVAL_SECONDS = 30.0
KEDA_COOLDOWN_SECONDS = scaling.KEDA_COOLDOWN_SECONDS
HPA_SYNC_SECONDS = 15.0


@dataclass(frozen=True)
class Signals:
    """What a scaler can see at one second of the model."""

    backlog: float  # as the metrics pipeline shows it: `Scenario.metric_lag_seconds` old
    in_flight: float  # messages being served this second
    busy_replicas: float  # the serving pods' busy fractions, summed (worker metrics: fresh)
    # This second, ready pods had spare capacity: the queue ran dry and they got empty receives. None: no
    # pod was ready to receive.
    queue_found_empty: bool | None
    acked: float = 0.0  # task attempts that succeeded this second (the workers' counters)
    failed: float = 0.0  # task attempts that failed this second: the downstream refused them


class Scaler(Protocol):
    name: str

    def step(self, now: float, signals: Signals, current: int) -> int:
        """Replicas wanted at second `now` (usually `current`: most seconds are not decision points)."""
        ...


def our_default_policy(max_replicas: int, messages_per_replica: float | None = None) -> scaling.ScalingPolicy:
    """The CRD's defaults (see scaling.DEFAULT_*), with the scenario's bounds."""
    return scaling.ScalingPolicy(
        min_replicas=0,
        max_replicas=max_replicas,
        messages_per_replica=messages_per_replica,
        target_drain_seconds=scaling.DEFAULT_TARGET_DRAIN_SECONDS,
        activation_backlog=0,
        cooldown_seconds=scaling.DEFAULT_COOLDOWN_SECONDS,
        tolerance=scaling.DEFAULT_TOLERANCE,
        scale_up=scaling.DEFAULT_SCALE_UP,
        scale_down=scaling.DEFAULT_SCALE_DOWN,
        fallback_replicas=None,
    )


def default_protection() -> DownstreamProtection:
    """`scaling.downstreamProtection` as the CRD defaults it."""
    return DownstreamProtection(
        enabled=bool(schema.default_at("scaling", "downstreamProtection", "enabled")),
        failure_ratio=float(schema.default_at("scaling", "downstreamProtection", "failureRatio")),
        minimum_attempts=int(schema.default_at("scaling", "downstreamProtection", "minimumAttempts")),
    )


def downstream_failing(protection: DownstreamProtection, acked: float, failed: float) -> bool:
    """The rule of `plan.downstream_failing` (which the simulator's layer may not import), on the attempts
    since the last decision."""
    ratio = WorkerStats({}, 0.0, None, None, None, {"exception": failed}, acked).failure_ratio
    if not protection.enabled or ratio is None or acked + failed < protection.minimum_attempts:
        return False
    return ratio >= protection.failure_ratio


@dataclass
class OurScaler:
    policy: scaling.ScalingPolicy
    # No scale-up while the workers' tasks fail (the operator's plan holds the count); None: not modelled.
    protection: DownstreamProtection | None = None
    interval_seconds: float = scaling.DEFAULT_POLLING_INTERVAL_SECONDS
    name: str = "queue-consumer-operator"
    state: scaling.ScalingState = field(default_factory=scaling.ScalingState)
    _next: float = 0.0
    # Whether the queue ran dry at any second since the last decision, as the operator reads it from the
    # workers' empty-receive counters scraped at each tick; None: no pod could have received.
    _found_empty: bool | None = None
    _acked: float = 0.0  # attempts since the last decision, as the workers' counters rose between scrapes
    _failed: float = 0.0
    # The throughput per replica as the operator learns it: its own estimator over the scrapes it makes at
    # its ticks (completions between two scrapes over the busy time between them), so known only from the
    # second tick that finds ready pods, and only once they were busy. The fleet is one pod here.
    _estimator: ThroughputEstimator = field(default_factory=ThroughputEstimator)
    _acked_total: float = 0.0
    _busy_seconds_total: float = 0.0  # the workers' busy-time counter, summed over the fleet

    def step(self, now: float, signals: Signals, current: int) -> int:
        if signals.queue_found_empty is not None:
            self._found_empty = bool(self._found_empty) or signals.queue_found_empty
        self._acked += signals.acked
        self._acked_total += signals.acked
        self._busy_seconds_total += signals.busy_replicas  # one second at this busy fraction
        self._failed += signals.failed
        if now < self._next:
            return current
        self._next = now + self.interval_seconds
        ready = signals.queue_found_empty is not None  # no ready pod: nothing answers the scrape
        fleet = PodSample(
            self._acked_total,
            signals.in_flight,
            signals.busy_replicas,
            busy_seconds_total=self._busy_seconds_total,
        )
        scraped = {"fleet": fleet}
        throughput = self._estimator.update(scraped if ready else {}, now)
        observation = scaling.Observation(
            signals.backlog,
            throughput,
            signals.in_flight,
            busy_replicas=signals.busy_replicas,
            queue_found_empty=self._found_empty,
        )
        self._found_empty = None  # the counters' next delta starts at this scrape
        decision = scaling.decide(self.policy, observation, current, self.state, now)
        failing = self.protection is not None and downstream_failing(
            self.protection, self._acked, self._failed
        )
        self._acked = self._failed = 0.0
        if failing and decision.replicas > current:  # held, as plan.plan holds it: no more load on it
            self.state = scaling.overridden_state(decision, current, current, now)
            return current
        self.state = decision.state
        return decision.replicas


@dataclass
class KedaHpaScaler:
    messages_per_replica: float  # KEDA's `value` (queueLength / subscriptionSize): the HPA's AverageValue
    max_replicas: int
    name: str = "KEDA + HPA"
    # The ScaledObject's pollingInterval and cooldownPeriod, and the HPA's behavior.scaleDown window
    # (advanced.horizontalPodAutoscalerConfig): their defaults, or what a careful user tunes them to.
    polling_interval_seconds: float = KEDA_POLLING_INTERVAL_SECONDS
    cooldown_seconds: float = KEDA_COOLDOWN_SECONDS
    scale_down_window_seconds: float = scaling.HPA_SCALE_DOWN.stabilization_window_seconds
    state: scaling.ScalingState = field(default_factory=scaling.ScalingState)
    last_active: float = -math.inf
    _next_poll: float = 0.0
    _next_sync: float = 0.0

    @property
    def hpa_policy(self) -> scaling.ScalingPolicy:
        # KEDA's own loop below owns idleness and 0 <-> 1, so the HPA part never cools down by itself.
        scale_down = replace(
            scaling.HPA_SCALE_DOWN, stabilization_window_seconds=self.scale_down_window_seconds
        )
        return scaling.hpa_compatible(
            1, self.max_replicas, self.messages_per_replica, cooldown_seconds=math.inf, scale_down=scale_down
        )

    def step(self, now: float, signals: Signals, current: int) -> int:
        backlog = signals.backlog  # KEDA and the HPA read the backlog alone
        wanted = current
        if now >= self._next_poll:  # KEDA's own loop: activation and cooldown
            self._next_poll = now + self.polling_interval_seconds
            if backlog > 0:
                self.last_active = now
                if current == 0:
                    wanted = 1
            elif current > 0 and now - self.last_active >= self.cooldown_seconds:
                return 0
        if wanted > 0 and now >= self._next_sync:  # the HPA's sync loop, only while KEDA has activated
            self._next_sync = now + HPA_SYNC_SECONDS
            decision = scaling.decide(self.hpa_policy, scaling.Observation(backlog), wanted, self.state, now)
            self.state = replace(decision.state, last_active_seconds=now)  # KEDA owns idleness, not the HPA
            wanted = decision.replicas
        return wanted
