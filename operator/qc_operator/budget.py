"""Pure: the fleet's rate budget (`spec.worker.maxMessagesPerSecond`) split among the pods, and the replica
count it allows.

Called from `plan.plan` on every tick, after the scaling decision, the pause and the downstream hold. The
share goes to the workers through a ConfigMap the pods mount (`builders.rate_limit_config_map`): the
kubelet refreshes the file in place, so a change costs no rollout, but it arrives late (up to the
kubelet's sync period). The order of writes keeps the fleet within its budget meanwhile:

1. Scaling out from n to m: the share is lowered to budget/m first, and replicas are added only once every
   pod that answered the scrape reports it (`qc_worker_rate_share_messages_per_second`).
2. Scaling in from n to m: replicas go at once; the share rises to budget/m only once the removed pods are
   gone (terminating ones still count).
3. Replicas beyond what the budget can use are not added: at most ceil(budget / the measured throughput of
   one busy replica). That figure is completions over busy time, and a worker waiting for a token is not
   busy, so it stays the unthrottled capacity while the fleet is throttled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SHARE_TOLERANCE = 1e-6  # relative: a share reported as written, up to float formatting
SHARE_SIGNIFICANT_DIGITS = 6  # the share as written in the ConfigMap


@dataclass(frozen=True)
class BudgetPlan:
    replicas: int  # the target after the budget
    share_per_second: float | None  # what each pod may do; None: no budget
    waiting_for_pods: tuple[str, ...] = ()  # pods still above the lowered share: replicas held meanwhile
    capped_at: int | None = None  # the replicas the budget can use, when it cut the target
    reason: str = ""  # one sentence for the status and the Event; "" when the budget changed nothing


def share_text(share_per_second: float | None) -> str:
    """The ConfigMap's value: the share with 6 significant digits, "" for no limit."""
    return "" if share_per_second is None else f"{share_per_second:.{SHARE_SIGNIFICANT_DIGITS}g}"


def share_of(budget_per_second: float, pods: int) -> float:
    """One pod's share as written: the budget split evenly, cut (never rounded up) to
    `SHARE_SIGNIFICANT_DIGITS`, so the shares never add up to more than the budget."""
    exact = budget_per_second / max(1, pods)
    scale = 10.0 ** (SHARE_SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(exact)))
    # The epsilon keeps 0.7 from becoming 0.699999 (0.7 * 1e6 is 699999.99... in binary).
    return math.floor(exact * scale + 1e-6) / scale


def useful_replicas(budget_per_second: float, throughput_per_replica: float | None) -> int | None:
    """The most replicas the budget keeps busy: ceil(budget / one busy replica's throughput); None
    until the throughput is measured."""
    if not throughput_per_replica or throughput_per_replica <= 0:
        return None
    return max(1, math.ceil(budget_per_second / throughput_per_replica - SHARE_TOLERANCE))


def plan_budget(
    budget_per_second: float | None,
    current_replicas: int,
    wanted_replicas: int,
    pods_present: int,
    reported_shares: Mapping[str, float | None],
    throughput_per_replica: float | None,
) -> BudgetPlan:
    """The replicas to apply and the share to write this tick.

    `pods_present`: the worker pods that exist, terminating ones included; `reported_shares`: pod -> the
    share it exports (None: it exports none) for the pods that answered the scrape."""
    if budget_per_second is None:
        return BudgetPlan(wanted_replicas, None)
    target, capped_at, reason = wanted_replicas, None, ""
    cap = useful_replicas(budget_per_second, throughput_per_replica)
    if cap is not None and target > max(current_replicas, cap):
        target, capped_at = max(current_replicas, cap), cap
        reason = (
            f"holding at {target} replicas instead of {wanted_replicas}: {budget_per_second:g} msg/s "
            f"(maxMessagesPerSecond) keeps at most {cap} busy at {throughput_per_replica:.3g} msg/s each"
        )
    if target > current_replicas:
        share = share_of(budget_per_second, target)
        above = tuple(
            sorted(
                pod
                for pod, reported in reported_shares.items()
                if reported is None or reported > share * (1 + SHARE_TOLERANCE)
            )
        )
        if above:
            shown = ", ".join(above[:3]) + (f" and {len(above) - 3} more" if len(above) > 3 else "")
            reason = (
                f"holding {current_replicas} replicas until the running pods apply the share "
                f"{share_text(share)} msg/s for {target} (waiting for {shown})"
            )
            return BudgetPlan(current_replicas, share, above, capped_at, reason)
        return BudgetPlan(target, share, (), capped_at, reason)
    # Holding or scaling in: pods still present (terminating ones too) keep their share until gone.
    return BudgetPlan(target, share_of(budget_per_second, max(target, pods_present)), (), capped_at, reason)
