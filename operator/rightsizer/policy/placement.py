"""Sizing inside a policy: the pools a namespace may use, and the cheapest plan the policy allows.

The policy restricts *where* sizing looks (allowed products and pools; declared pools are added to the known
ones) and *which* of the feasible shapes may be chosen (GPUs per replica). Quota is deliberately not a sizing
input: it depends on the namespace's other deployments, and a plan that moved whenever a neighbour scaled would roll
pods for nothing. Quota is checked at admission and bounds the replicas instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.facts.gpus import UnknownGpuProductError
from rightsizer.policy.decision import Decision, Violation, ViolationKind, allow_phrase, policies_phrase
from rightsizer.policy.effective import EffectivePolicy
from rightsizer.policy.evaluate import evaluate, listing
from rightsizer.sizing import Candidate, PerformanceHook, SearchResult, SizingRequest, plan, search, to_plan
from rightsizer.sizing.pools import GpuPool, from_spec, unknown_products
from rightsizer.sizing.ranking import RankedPool, rank_pools


def declared_pools(effective: EffectivePolicy) -> list[GpuPool]:
    """The pools the selecting policies declare (a product rightsizer has no facts for is left out; the policy's
    Accepted condition names it). Merge them with the discovered pools before sizing."""
    pools = []
    for declared in effective.pools:
        try:
            pools.append(from_spec(declared.value))
        except UnknownGpuProductError:
            continue
    return pools


def with_declared(known: Sequence[GpuPool], effective: EffectivePolicy) -> list[GpuPool]:
    """`known` plus the policy's declared pools; a declared pool replaces a known one of the same name (for
    offline use; the operator merges with sizing.pools.merge, which also keeps discovered node counts)."""
    declared = {p.name: p for p in declared_pools(effective)}
    return sorted([p for p in known if p.name not in declared] + list(declared.values()), key=lambda p: p.name)


def restrict_pools(pools: Sequence[GpuPool], effective: EffectivePolicy) -> list[GpuPool]:
    """The pools the policy allows sizing to choose from."""
    products, names = effective.gpu_products, effective.pool_names
    return [
        p
        for p in pools
        if (products is None or p.product in products.value) and (names is None or p.name in names.value)
    ]


def _no_allowed_pool(pools: Sequence[GpuPool], effective: EffectivePolicy) -> Violation:
    offered = ", ".join(f"{p.name} ({p.product})" for p in pools) or "none"
    parts: list[str] = []
    limits: list[str] = []
    sources: list[str] = []
    if effective.gpu_products is not None:
        parts.append(f"products {listing(effective.gpu_products.value)}")
        limits.append("allowed.gpuProducts")
        sources += effective.gpu_products.policies
    if effective.pool_names is not None:
        parts.append(f"pools {listing(effective.pool_names.value)}")
        limits.append("allowed.pools")
        sources += effective.pool_names.policies
    policies = tuple(dict.fromkeys(sources))
    message = f"no known GPU pool is allowed; known: {offered}; {allow_phrase(policies)} {' and '.join(parts)}"
    return Violation(ViolationKind.NO_ALLOWED_POOL, "spec.gpu.products", ", ".join(limits), policies, message)


def _within_shape_limits(candidate: Candidate, effective: EffectivePolicy) -> bool:
    limit = effective.max_gpus_per_replica
    return limit is None or candidate.shape.gpus <= limit.value


@dataclass(frozen=True)
class PolicyPlan:
    """The plan the policy allows (or, when none complies, the closest one, so the violation can name what it
    needs) and the policy's decision on it. `plan` is None only when no pool is allowed at all."""

    plan: Plan | None
    decision: Decision
    ranked: tuple[RankedPool, ...] = ()  # every allowed pool's own plan, the primary first (sizing.ranking)


def plan_within_policy(
    request: SizingRequest,
    effective: EffectivePolicy,
    model_name: str,
    performance: PerformanceHook | None = None,
    image_repository: str = c.VLLM_IMAGE_REPOSITORY,
) -> PolicyPlan:
    """The cheapest plan the policy allows among `request.pools` (declared pools already merged in).

    Raises SizingError, as sizing.plan does, when no allowed pool can hold the model at all."""
    spec = request.spec
    pools = restrict_pools(request.pools, effective)
    if not pools and request.pools:  # with no pool known at all, sizing's own error says so (no policy is at fault)
        blocked = Decision((_no_allowed_pool(request.pools, effective),))
        return PolicyPlan(None, blocked.plus(evaluate(spec, None, effective, image_repository)))
    restricted = replace(request, pools=pools)
    result = search(restricted, performance) if not unknown_products(spec.gpu.products) else SearchResult()
    if not result.candidates:
        plan(restricted, model_name, performance)  # raises the SizingError that names the field to change
        raise AssertionError("sizing found a plan the search did not")
    compliant = [cand for cand in result.candidates if _within_shape_limits(cand, effective)]
    if compliant:
        chosen = compliant[0]
        planned = to_plan(restricted, chosen, SearchResult(compliant, result.rejections), model_name)
        planned = _explained(planned, result.candidates.index(chosen), pools, request.pools, effective)
        limit = effective.max_gpus_per_replica
        ruled_out = (
            ""
            if limit is None
            else f"every plan needs more than {limit.value} GPUs per replica, which "
            f"{policies_phrase(limit.policies)} forbids (limits.maxGpusPerReplica)"
        )
        ranked = rank_pools(
            restricted, result, model_name, lambda cand: _within_shape_limits(cand, effective), ruled_out
        )
        primary = replace(ranked[0], plan=planned)  # the same pool and candidate, with the policy's notes
        return PolicyPlan(planned, evaluate(spec, planned, effective, image_repository), (primary, *ranked[1:]))
    chosen = min(result.candidates, key=lambda cand: cand.shape.gpus)
    planned = to_plan(restricted, chosen, result, model_name)
    return PolicyPlan(planned, evaluate(spec, planned, effective, image_repository))


def _explained(
    planned: Plan, skipped: int, pools: Sequence[GpuPool], known: Sequence[GpuPool], effective: EffectivePolicy
) -> Plan:
    """Add why the policy changed the choice: pools it ruled out, cheaper shapes it forbids."""
    notes = []
    if len(pools) < len(known):
        sources = (effective.gpu_products.policies if effective.gpu_products else ()) + (
            effective.pool_names.policies if effective.pool_names else ()
        )
        notes.append(
            f"policy: pools limited to {', '.join(p.name for p in pools)} by "
            f"{policies_phrase(tuple(dict.fromkeys(sources)))} (allowed.gpuProducts, allowed.pools)"
        )
    limit = effective.max_gpus_per_replica
    if skipped and limit is not None:
        notes.append(
            f"policy: {skipped} cheaper plan(s) need more than {limit.value} GPUs per replica, which "
            f"{policies_phrase(limit.policies)} forbids (limits.maxGpusPerReplica)"
        )
    return planned.model_copy(update={"reasons": [*planned.reasons, *notes]}) if notes else planned
