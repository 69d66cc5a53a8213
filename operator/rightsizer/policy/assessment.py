"""One LLMDeployment judged against everything that decides its plan: the model, the GPU pools, and the platform
policies that select its namespace. Shared by the admission webhook, the reconciler and `rightsizer plan --policy`,
so all three reach the same verdict. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.errors import SizingError
from rightsizer.model.config import ModelFacts
from rightsizer.policy import (
    Decision,
    Defaulted,
    EffectivePolicy,
    apply_defaults,
    combine,
    declared_pools,
    evaluate,
    plan_within_policy,
    selecting,
)
from rightsizer.sizing import PerformanceHook, SizingRequest
from rightsizer.sizing.pools import GpuPool, merge
from rightsizer.sizing.ranking import RankedPool


@dataclass(frozen=True)
class Assessment:
    effective: EffectivePolicy
    spec: LLMDeploymentSpec  # the user's spec with the policies' defaults filled in
    defaulted: tuple[Defaulted, ...]
    plan: Plan | None  # the cheapest plan the policies allow (the closest one when none complies)
    decision: Decision
    pools: tuple[GpuPool, ...]  # every pool known for this namespace (discovered, operator-declared, policy-declared)
    ranked: tuple[RankedPool, ...] = ()  # every allowed pool's own plan, the primary first (empty: no plan)


def effective_policy(
    namespace: str, policies: Sequence[SizingPolicy], namespace_labels: Mapping[str, str]
) -> EffectivePolicy:
    return combine(namespace, selecting(policies, namespace, namespace_labels))


def assess(
    *,
    namespace: str,
    name: str,
    spec: LLMDeploymentSpec,
    facts: ModelFacts,
    known_pools: Sequence[GpuPool],
    effective: EffectivePolicy,
    image_repository: str,
    performance: PerformanceHook | None = None,
) -> Assessment:
    """Raises SizingError (naming the field) when no allowed pool can hold the model and no policy explains why."""
    defaulting = apply_defaults(spec, effective, facts)
    pools = tuple(merge(known_pools, declared_pools(effective)))
    try:
        outcome = plan_within_policy(
            SizingRequest(defaulting.spec, facts, pools), effective, spec.model.name, performance, image_repository
        )
    except SizingError:
        # Sizing found nothing inside the policy: if the spec itself asks for what the policy forbids (a product,
        # a pin), that is the answer a person needs; otherwise the sizing error is.
        stated = evaluate(defaulting.spec, None, effective, image_repository)
        if stated.allowed:
            raise
        return Assessment(effective, defaulting.spec, defaulting.applied, None, stated, pools)
    return Assessment(
        effective, defaulting.spec, defaulting.applied, outcome.plan, outcome.decision, pools, outcome.ranked
    )
