"""The per-namespace GPU quota: GPUs per replica × replicas, summed over a namespace's LLMDeployments, per product
(or over every product), against limits.namespaceQuota.

Usage is counted from the real LLMDeployment objects, as the operator's cache (kopf's index) shows them: what each
holds once it has been sized (status.plan, status.replicas). Between a real admission and that moment the object
holds a *reservation* that the webhook keeps in memory (never in the cluster: validation writes nothing). An
AdmissionReview proves nothing about its sender (any pod that reaches the webhook can post one), so a reservation
outlives `RESERVATION_TTL` only while a real object backs it: the cache holds an object of that name, uid and
generation that has not been sized from that generation yet. A forged review therefore reserves GPUs for at most
`RESERVATION_TTL`, and can neither lower nor take over a real object's reservation (reservations are kept per
name and uid; usage counts the larger of an object's). Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.policy.decision import Decision, Violation, ViolationKind, allow_phrase, policies_phrase
from rightsizer.policy.effective import EffectivePolicy, Sourced, product_key

RESERVATION_TTL = timedelta(seconds=30)
"""How long a reservation that no real object backs counts: longer than the API server takes from admission to
storing the object and the watch takes to bring it to the cache (milliseconds to a few seconds), short enough that
a forged review, or a create refused later in the admission chain, holds no GPUs for long."""


@dataclass(frozen=True)
class GpuCharge:
    """What one LLMDeployment holds, as the operator's cache shows it (see charge_of)."""

    name: str
    uid: str
    observed_generation: int  # status.observedGeneration: the generation its status.plan was sized from
    product: str | None  # None: not sized yet
    gpus: int
    generation: int = 0  # metadata.generation: the spec the object has now


@dataclass(frozen=True)
class Reservation:
    """GPUs an admitted LLMDeployment may hold before its status shows them."""

    name: str
    uid: str
    generation: int
    product: str
    gpus: int
    reserved_at: datetime


def starting_replicas(spec: LLMDeploymentSpec, plan: Plan) -> int:
    """Replicas the deployment runs once admitted: spec.replicas.desired (set by /scale or the autoscaler), else
    what the plan's workload needs, within min..max."""
    wanted = spec.replicas.desired if spec.replicas.desired is not None else plan.replicas
    return max(spec.replicas.min, min(wanted, spec.replicas.upper))


def charge_of(deployment: LLMDeployment) -> GpuCharge:
    """GPUs an LLMDeployment in the cache holds: its plan's GPUs per replica × the larger of the replicas it runs
    (status.replicas) and the replicas it wants, so a scale-down in progress still counts its running pods."""
    meta = deployment.metadata
    status = deployment.status
    plan = status.plan if status is not None else None
    generation = status.observed_generation if status is not None and status.observed_generation else 0
    name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    current = int(meta.get("generation") or 0)
    if plan is None:
        return GpuCharge(name, uid, generation, None, 0, current)
    running = status.replicas if status is not None and status.replicas is not None else 0
    replicas = max(running, starting_replicas(deployment.spec, plan))
    return GpuCharge(name, uid, generation, plan.gpu_product, plan.gpus_per_replica * replicas, current)


# --- reservations -----------------------------------------------------------------------------------------------


def backed(reservation: Reservation, charges: Iterable[GpuCharge]) -> bool:
    """Whether a real object backs the reservation: the cache holds an object of its name and uid at the reserved
    generation (a forged review cannot create one; it can only name one that exists, at the spec it has)."""
    return any(
        c.name == reservation.name and c.uid == reservation.uid and c.generation == reservation.generation
        for c in charges
    )


def live_reservations(
    reservations: Iterable[Reservation],
    charges: Iterable[GpuCharge],
    now: datetime,
    ttl: timedelta = RESERVATION_TTL,
) -> tuple[Reservation, ...]:
    """Reservations still counted: backed by a real object not yet sized from the reserved generation (its status
    supersedes the reservation once it is), or, unbacked, younger than `ttl`."""
    charges = list(charges)
    kept = []
    for r in reservations:
        if backed(r, charges):
            sized = any(c.name == r.name and c.uid == r.uid and c.observed_generation >= r.generation for c in charges)
            if not sized:
                kept.append(r)
        elif now - r.reserved_at < ttl:
            kept.append(r)
    return tuple(kept)


def namespace_usage(
    charges: Iterable[GpuCharge], reservations: Iterable[Reservation] = (), excluding: str | None = None
) -> dict[str, int]:
    """GPUs held per product by the namespace's LLMDeployments other than `excluding` (the one being admitted,
    whose old holding its new one replaces). Pass live reservations; an object with both a reservation and a
    cached charge on the same product counts the larger, on different products both (a re-plan rolls over)."""
    held: dict[tuple[str, str], int] = {}
    for name, product, gpus in [
        *((c.name, c.product, c.gpus) for c in charges),
        *((r.name, r.product, r.gpus) for r in reservations),
    ]:
        if name == excluding or product is None:
            continue
        key = (name, product_key(product))
        held[key] = max(held.get(key, 0), gpus)
    usage: dict[str, int] = {}
    for (_, product), gpus in held.items():
        usage[product] = usage.get(product, 0) + gpus
    return usage


# --- deciding -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaCheck:
    decision: Decision
    replicas: int  # replicas the quota leaves room for, at most the starting replicas
    gpus: int  # GPUs those replicas hold


def _used_under(quota: Sourced[tuple[str | None, int]], used: Mapping[str, int]) -> int:
    product = quota.value[0]
    return sum(used.values()) if product is None else used.get(product, 0)


def replicas_fitting(
    plan: Plan, effective: EffectivePolicy, used: Mapping[str, int]
) -> tuple[int, Sourced[tuple[str | None, int]]] | None:
    """The most replicas of `plan` the namespace quotas leave room for, and the binding quota; None: no quota."""
    best: tuple[int, Sourced[tuple[str | None, int]]] | None = None
    for quota in effective.quota_for(plan.gpu_product):
        left = max(0, quota.value[1] - _used_under(quota, used))
        fit = left // plan.gpus_per_replica
        if best is None or fit < best[0]:
            best = (fit, quota)
    return best


def check_quota(
    namespace: str, spec: LLMDeploymentSpec, plan: Plan, effective: EffectivePolicy, used: Mapping[str, int]
) -> QuotaCheck:
    """Whether the deployment fits the namespace's quota next to `used` (namespace_usage, excluding itself).

    Denied when not even spec.replicas.min replicas fit; when fewer than the starting replicas fit, allowed with a
    warning, and `replicas` says how many to run (the autoscaler's bounds keep it there)."""
    starting = starting_replicas(spec, plan)
    fitting = replicas_fitting(plan, effective, used)
    if fitting is None:
        return QuotaCheck(Decision(), starting, starting * plan.gpus_per_replica)
    fit, quota = fitting
    per_replica = plan.gpus_per_replica
    counted = quota.value[0] or "GPUs of any product"
    held = _used_under(quota, used)
    minimum = spec.replicas.min
    if minimum > fit:
        message = (
            f"namespace {namespace} would hold {held + minimum * per_replica} {counted} ({held} held by other "
            f"LLMDeployments + {minimum} replica(s) × {per_replica} × {plan.gpu_product}); "
            f"{allow_phrase(quota.policies)} {quota.value[1]}"
        )
        violation = Violation(
            ViolationKind.QUOTA, "spec.replicas.min", "limits.namespaceQuota", quota.policies, message
        )
        return QuotaCheck(Decision((violation,)), 0, 0)
    if starting > fit:
        warning = (
            f"namespace quota leaves room for {fit} of the {starting} replicas planned: {held} of the "
            f"{quota.value[1]} {counted} {policies_phrase(quota.policies)} allows are held elsewhere; running {fit}"
        )
        return QuotaCheck(Decision(warnings=(warning,)), fit, fit * per_replica)
    return QuotaCheck(Decision(), starting, starting * per_replica)


@dataclass(frozen=True)
class QuotaAdmission:
    check: QuotaCheck
    reservation: Reservation | None  # to record for this object; None: denied, or no quota on the product


@dataclass(frozen=True)
class AdmissionRequest:
    """The LLMDeployment being admitted, as the validating webhook sees it (uid and generation are set by then)."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: LLMDeploymentSpec
    plan: Plan


def admit(
    request: AdmissionRequest,
    effective: EffectivePolicy,
    charges: Sequence[GpuCharge],
    reservations: Sequence[Reservation],
    now: datetime,
    *,
    ttl: timedelta = RESERVATION_TTL,
) -> QuotaAdmission:
    """Whether the request fits the namespace quota next to the real objects (`charges`, the namespace's other
    LLMDeployments in the cache) and the live reservations of others; allowed with a quota in force, the
    reservation to record for it (the caller decides and records under one lock per namespace)."""
    live = live_reservations(reservations, charges, now, ttl)
    used = namespace_usage(charges, live, excluding=request.name)
    check = check_quota(request.namespace, request.spec, request.plan, effective, used)
    if not check.decision.allowed or not effective.quota_for(request.plan.gpu_product):
        return QuotaAdmission(check, None)
    mine = Reservation(
        request.name, request.uid, request.generation, request.plan.gpu_product, check.gpus, now.astimezone(UTC)
    )
    return QuotaAdmission(check, mine)
