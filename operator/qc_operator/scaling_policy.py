"""The scaling policy: the typed rules `scaling.decide` applies, their defaults, and KEDA's and the HPA's.

Pure data, no I/O: `spec.parse` turns `spec.scaling` into a `ScalingPolicy`, `plan.plan` hands it to
`scaling.decide`, and the simulator and `qc-operator convert` build them too. Kept apart from the decision
so `scaling` holds only its steps; `scaling` re-exports these names, so `scaling.ScalingPolicy` and the
like stay where their callers find them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RatePolicy:
    """At most `value` pods (or percent of the period's starting count) added/removed per period."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_seconds: float


@dataclass(frozen=True)
class ScalingRules:
    """One direction's behaviour, as the HPA's `behavior.scaleUp` / `behavior.scaleDown`."""

    stabilization_window_seconds: float
    policies: tuple[RatePolicy, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"


# The HPA's documented defaults (autoscaling/v2).
HPA_SCALE_UP = ScalingRules(0, (RatePolicy("Pods", 4, 15), RatePolicy("Percent", 100, 15)))
HPA_SCALE_DOWN = ScalingRules(300, (RatePolicy("Percent", 100, 15),))
HPA_TOLERANCE = 0.1  # the controller's --horizontal-pod-autoscaler-tolerance default, both directions
KEDA_COOLDOWN_SECONDS = 300.0  # KEDA's cooldownPeriod default

# Our defaults (the CRD's), chosen with the simulator (`qc-operator simulate` and `make bench-simulator`,
# see the README's "Simulate before you deploy"): poll often, size the fleet for the work in progress plus
# draining the backlog within 20 s, scale up in big steps (the latency target is computed from measured
# throughput, so big steps do not overshoot), give capacity back two minutes after the last higher
# recommendation. The HPA waits five because its metric may be noisy and stale; our drain target drops as
# soon as the workers find the queue empty (`present_backlog`), so waiting longer holds idle pods.
DEFAULT_POLLING_INTERVAL_SECONDS = 5.0
DEFAULT_COOLDOWN_SECONDS = 60.0
DEFAULT_TARGET_DRAIN_SECONDS = 20.0
DEFAULT_TOLERANCE = 0.2
DEFAULT_SCALE_UP = ScalingRules(0, (RatePolicy("Pods", 10, 15), RatePolicy("Percent", 400, 15)))
DEFAULT_SCALE_DOWN = ScalingRules(120, (RatePolicy("Percent", 50, 15),))


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int
    max_replicas: int
    # KEDA-style AverageValue target: replicas = ceil(backlog / messages_per_replica).
    messages_per_replica: float | None
    # Latency target: enough replicas to drain the backlog within this, from measured per-replica throughput.
    target_drain_seconds: float | None
    activation_backlog: float  # wake 0 -> 1 only when the backlog exceeds this
    cooldown_seconds: float  # idle this long (no backlog, nothing in flight) before going to min_replicas
    tolerance: float  # no change while 1 - tolerance <= usage ratio <= 1 + tolerance
    scale_up: ScalingRules
    scale_down: ScalingRules
    fallback_replicas: int | None  # replicas while the source fails; None holds the current count (>= 1)
    # The HPA's behavior.scaleUp.tolerance / scaleDown.tolerance: None takes `tolerance`.
    scale_up_tolerance: float | None = None
    scale_down_tolerance: float | None = None
    # The HPA's recordInitialRecommendation: a controller with no history counts the current replicas as its
    # first recommendation, so a new or restarted one does not scale down within one window.
    initial_recommendation: bool = False

    def within_tolerance(self, usage_ratio: float) -> bool:
        """The HPA's Tolerances.isWithin: too small a change to act on."""
        up = self.tolerance if self.scale_up_tolerance is None else self.scale_up_tolerance
        down = self.tolerance if self.scale_down_tolerance is None else self.scale_down_tolerance
        return 1.0 - down <= usage_ratio <= 1.0 + up


def hpa_compatible(
    min_replicas: int,
    max_replicas: int,
    messages_per_replica: float,
    *,
    activation_backlog: float = 0.0,
    cooldown_seconds: float = KEDA_COOLDOWN_SECONDS,
    fallback_replicas: int | None = None,
    scale_up: ScalingRules = HPA_SCALE_UP,
    scale_down: ScalingRules = HPA_SCALE_DOWN,
    scale_up_tolerance: float | None = None,
    scale_down_tolerance: float | None = None,
) -> ScalingPolicy:
    """KEDA + the HPA in one line: a ScaledObject with an AverageValue target of `messages_per_replica` and
    the HPA's `behavior` at its defaults (tolerance 0.1 both ways, the first recommendation recorded)."""
    return ScalingPolicy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        messages_per_replica=messages_per_replica,
        target_drain_seconds=None,
        activation_backlog=activation_backlog,
        cooldown_seconds=cooldown_seconds,
        tolerance=HPA_TOLERANCE,
        scale_up=scale_up,
        scale_down=scale_down,
        fallback_replicas=fallback_replicas,
        scale_up_tolerance=scale_up_tolerance,
        scale_down_tolerance=scale_down_tolerance,
        initial_recommendation=True,
    )
