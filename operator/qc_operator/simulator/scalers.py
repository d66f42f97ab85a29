"""The two autoscalers compared: ours (the operator's real `scaling.decide`) and KEDA + HPA v2.

Both see the same lagged backlog. KEDA + HPA uses the documented defaults: KEDA polls activity every
30 s, scales 0 -> 1 above the activation value (0) and back to 0 after cooldownPeriod 300 s; the HPA syncs
every 15 s with tolerance 0.1 on an AverageValue target, scale-up max(4 pods, 100%) per 15 s and
scale-down stabilization 300 s at 100% per 15 s. The HPA arithmetic is `scaling.decide` with HPA rules
(the property tests prove it reproduces the HPA); KEDA's 0 <-> 1 sits on top, as in a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol

from qc_operator import scaling

KEDA_POLLING_INTERVAL_SECONDS = 30.0
KEDA_COOLDOWN_SECONDS = 300.0
HPA_SYNC_SECONDS = 15.0


class Scaler(Protocol):
    name: str

    def step(
        self, now: float, backlog: float, throughput: float | None, in_flight: float, current: int
    ) -> int:
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


@dataclass
class OurScaler:
    policy: scaling.ScalingPolicy
    interval_seconds: float = scaling.DEFAULT_POLLING_INTERVAL_SECONDS
    name: str = "queue-consumer-operator"
    state: scaling.ScalingState = field(default_factory=scaling.ScalingState)
    _next: float = 0.0

    def step(
        self, now: float, backlog: float, throughput: float | None, in_flight: float, current: int
    ) -> int:
        if now < self._next:
            return current
        self._next = now + self.interval_seconds
        observation = scaling.Observation(backlog, throughput, in_flight)
        decision = scaling.decide(self.policy, observation, current, self.state, now)
        self.state = decision.state
        return decision.replicas


@dataclass
class KedaHpaScaler:
    messages_per_replica: float  # KEDA's `value` (queueLength / subscriptionSize): the HPA's AverageValue
    max_replicas: int
    name: str = "KEDA + HPA"
    state: scaling.ScalingState = field(default_factory=scaling.ScalingState)
    last_active: float = -math.inf
    _next_poll: float = 0.0
    _next_sync: float = 0.0

    @property
    def hpa_policy(self) -> scaling.ScalingPolicy:
        return scaling.ScalingPolicy(
            min_replicas=1, max_replicas=self.max_replicas, messages_per_replica=self.messages_per_replica,
            target_drain_seconds=None, activation_backlog=0, cooldown_seconds=math.inf,
            tolerance=scaling.HPA_TOLERANCE, scale_up=scaling.HPA_SCALE_UP, scale_down=scaling.HPA_SCALE_DOWN,
            fallback_replicas=None,
        )  # fmt: skip

    def step(
        self, now: float, backlog: float, throughput: float | None, in_flight: float, current: int
    ) -> int:
        wanted = current
        if now >= self._next_poll:  # KEDA's own loop: activation and cooldown
            self._next_poll = now + KEDA_POLLING_INTERVAL_SECONDS
            if backlog > 0:
                self.last_active = now
                if current == 0:
                    wanted = 1
            elif current > 0 and now - self.last_active >= KEDA_COOLDOWN_SECONDS:
                self.state = scaling.ScalingState()
                return 0
        if wanted > 0 and now >= self._next_sync:  # the HPA's sync loop, only while KEDA has activated
            self._next_sync = now + HPA_SYNC_SECONDS
            decision = scaling.decide(self.hpa_policy, scaling.Observation(backlog), wanted, self.state, now)
            self.state = replace(decision.state, last_active_seconds=now)  # KEDA owns idleness, not the HPA
            wanted = decision.replicas
        return wanted
