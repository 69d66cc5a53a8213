"""Replica bounds under policy, for the autoscaler and the reconciler.

A policy tightened after admission never removes running replicas: it only stops scale-ups beyond the new bound
(docs/policy.md). `bound_recommendation` encodes that rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.policy.decision import policies_phrase
from rightsizer.policy.effective import EffectivePolicy
from rightsizer.policy.quota import Overflow, replicas_fitting


@dataclass(frozen=True)
class ReplicaBounds:
    lower: int
    upper: int
    reasons: tuple[str, ...]  # why upper is below spec.replicas.max, for the autoscaler's status


def replica_bounds(
    spec: LLMDeploymentSpec,
    plan: Plan,
    effective: EffectivePolicy,
    used: Mapping[str, int] | None = None,
    overflow: Overflow | None = None,
) -> ReplicaBounds:
    """spec.replicas.min..max, capped by limits.maxReplicas and by the replicas the namespace quota leaves room for
    next to `used` (namespace_usage of the *other* deployments; None: quota not considered), the replicas on the
    overflow pool (`overflow`, policy.quota.overflow_of) counted at that pool's product and GPUs per replica."""
    upper, reasons = spec.replicas.upper, []
    limit = effective.max_replicas
    if limit is not None and limit.value < upper:
        upper = limit.value
        reasons.append(f"limits.maxReplicas {limit.value} from {policies_phrase(limit.policies)}")
    fitting = replicas_fitting(plan, effective, used, overflow, up_to=upper) if used is not None else None
    if fitting is not None and fitting[0] < upper:
        fit, quota = fitting
        upper = fit
        counted = quota.value[0] or "GPUs"
        moved = overflow.on_overflow(fit) if overflow is not None else 0
        overflowing = (
            f" ({moved} of them on the overflow pool's {overflow.product}, {overflow.gpus_per_replica} GPUs each)"
            if overflow is not None and moved
            else ""
        )
        reasons.append(
            f"namespace quota of {quota.value[1]} {counted} from {policies_phrase(quota.policies)} leaves room for "
            f"{fit} replica(s) of {plan.gpus_per_replica} GPUs{overflowing}"
        )
    return ReplicaBounds(min(spec.replicas.min, upper), upper, tuple(reasons))


def bound_recommendation(recommended: int, current: int, bounds: ReplicaBounds) -> int:
    """The replicas to set: scale-ups stop at `bounds.upper` (never below `current`: running replicas stay),
    scale-downs stop at `bounds.lower`."""
    if recommended > current:
        return max(current, min(recommended, bounds.upper))
    return max(recommended, bounds.lower)
