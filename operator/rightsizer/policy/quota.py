"""The per-namespace GPU quota: GPUs per replica × replicas, summed over a namespace's LLMDeployments, per product
(or over every product), against limits.namespaceQuota.

Usage is counted from the real LLMDeployment objects, as the operator's cache (kopf's index) shows them: what each
holds once it has been sized (status.plan, status.replicas), each replica at the product it runs on: while replicas
overflow onto the next pool (status.placement), those run that pool's own plan (status.pools), on its GPU product
and with its GPUs per replica, and are charged there. Between a real admission and that moment the object
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

from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec, PlacementStatus
from rightsizer.api.v1alpha1.plan import Plan, PoolPlan
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
    gpus: int  # on `product`: the primary pool's replicas
    generation: int = 0  # metadata.generation: the spec the object has now
    overflow_product: str | None = None  # replicas on the overflow pool (status.placement), on its product
    overflow_gpus: int = 0


@dataclass(frozen=True)
class Reservation:
    """GPUs an admitted LLMDeployment may hold before its status shows them."""

    name: str
    uid: str
    generation: int
    product: str
    gpus: int
    reserved_at: datetime
    overflow_product: str | None = None  # an overflowing object's replicas on the overflow pool
    overflow_gpus: int = 0


@dataclass(frozen=True)
class Overflow:
    """Replicas that run on the overflow pool (status.placement) with that pool's own plan (status.pools)."""

    product: str
    gpus_per_replica: int
    replicas: int
    of: int  # the replica count they are part of (status.replicas): the primary pool runs the others

    def on_overflow(self, replicas: int) -> int:
        """How many of `replicas` run on the overflow pool: a scale-down removes the overflow's first (the primary's
        running replicas stay), and a scale-up asks the primary first (kube.placement)."""
        primary = max(0, self.of - self.replicas)
        return max(0, min(self.replicas, replicas - primary))


def overflow_of(placement: PlacementStatus | None, pools: Sequence[PoolPlan], of: int) -> Overflow | None:
    """The overflow replicas status.placement shows, at the product and GPUs per replica of their pool's plan
    (status.pools, or the plans a new assessment ranks); None when none run there."""
    entry = next((e for e in (placement.pools if placement else []) if e.role == "overflow"), None)
    if entry is None or entry.replicas <= 0:
        return None
    plan = next((p for p in pools if p.pool == entry.pool and p.fits and p.gpus_per_replica), None)
    if plan is None or plan.gpus_per_replica is None:
        return None
    return Overflow(plan.gpu_product, plan.gpus_per_replica, entry.replicas, max(of, entry.replicas))


def placed_gpus(replicas: int, plan: Plan, overflow: Overflow | None = None) -> dict[str, int]:
    """GPUs per product (product_key) that `replicas` hold where they run: the overflow's at its product and GPUs
    per replica, the others at the plan's."""
    moved = overflow.on_overflow(replicas) if overflow is not None else 0
    held = {product_key(plan.gpu_product): (replicas - moved) * plan.gpus_per_replica}
    if overflow is not None and moved:
        key = product_key(overflow.product)
        held[key] = held.get(key, 0) + moved * overflow.gpus_per_replica
    return held


def starting_replicas(spec: LLMDeploymentSpec, plan: Plan) -> int:
    """Replicas the deployment runs once admitted: spec.replicas.desired (set by /scale or the autoscaler), else
    what the plan's workload needs, within min..max."""
    wanted = spec.replicas.desired if spec.replicas.desired is not None else plan.replicas
    return max(spec.replicas.min, min(wanted, spec.replicas.upper))


def charge_of(deployment: LLMDeployment) -> GpuCharge:
    """GPUs an LLMDeployment in the cache holds: GPUs per replica × the larger of the replicas it runs
    (status.replicas) and the replicas it wants, so a scale-down in progress still counts its running pods; the
    replicas on the overflow pool (status.placement) at that pool's product and GPUs per replica (status.pools)."""
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
    overflow = overflow_of(status.placement, status.pools, replicas) if status is not None else None
    moved = overflow.on_overflow(replicas) if overflow is not None else 0
    primary = (replicas - moved) * plan.gpus_per_replica
    if overflow is None or not moved:
        return GpuCharge(name, uid, generation, plan.gpu_product, primary, current)
    return GpuCharge(
        name, uid, generation, plan.gpu_product, primary, current, overflow.product, moved * overflow.gpus_per_replica
    )


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
    holdings: list[GpuCharge | Reservation] = [*charges, *reservations]
    for holding in holdings:
        if holding.name == excluding:
            continue
        mine: dict[str, int] = {}  # one object's GPUs per product: its primary's and its overflow's
        for product, gpus in ((holding.product, holding.gpus), (holding.overflow_product, holding.overflow_gpus)):
            if product is not None and gpus:
                mine[product_key(product)] = mine.get(product_key(product), 0) + gpus
        for product, gpus in mine.items():
            key = (holding.name, product)
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
    gpus: int  # GPUs those replicas hold on the plan's product
    overflow_gpus: int = 0  # and on the overflow pool's product


def _used_under(quota: Sourced[tuple[str | None, int]], used: Mapping[str, int]) -> int:
    product = quota.value[0]
    return sum(used.values()) if product is None else used.get(product, 0)


def _quotas(plan: Plan, effective: EffectivePolicy, overflow: Overflow | None) -> list[Sourced[tuple[str | None, int]]]:
    """The quotas that count the plan's product or the overflow's."""
    quotas = list(effective.quota_for(plan.gpu_product))
    if overflow is not None:
        quotas += [q for q in effective.quota_for(overflow.product) if q not in quotas]
    return quotas


def replicas_fitting(
    plan: Plan,
    effective: EffectivePolicy,
    used: Mapping[str, int],
    overflow: Overflow | None = None,
    up_to: int | None = None,
) -> tuple[int, Sourced[tuple[str | None, int]]] | None:
    """The most replicas of `plan` the namespace quotas leave room for, and the binding quota; None: no quota.
    With `overflow`, the replicas on the overflow pool count at its product and GPUs per replica, and the answer is
    at most `up_to` (a quota on the overflow's product alone does not bound replicas added on the primary)."""
    best: tuple[int, Sourced[tuple[str | None, int]]] | None = None
    for quota in _quotas(plan, effective, overflow):
        left = max(0, quota.value[1] - _used_under(quota, used))
        if overflow is None:
            fit = left // plan.gpus_per_replica
        else:
            ceiling = up_to if up_to is not None else overflow.of + left + 1
            fit = 0
            while fit < ceiling and _used_under(quota, placed_gpus(fit + 1, plan, overflow)) <= left:
                fit += 1
        if best is None or fit < best[0]:
            best = (fit, quota)
    return best


def _replicas_text(replicas: int, plan: Plan, overflow: Overflow | None) -> str:
    moved = overflow.on_overflow(replicas) if overflow is not None else 0
    text = f"{replicas - moved} replica(s) × {plan.gpus_per_replica} × {plan.gpu_product}"
    if overflow is not None and moved:
        text += f" + {moved} overflow replica(s) × {overflow.gpus_per_replica} × {overflow.product}"
    return text


def _check(replicas: int, plan: Plan, overflow: Overflow | None, decision: Decision | None = None) -> QuotaCheck:
    moved = overflow.on_overflow(replicas) if overflow is not None else 0
    overflow_gpus = moved * overflow.gpus_per_replica if overflow is not None else 0
    gpus = (replicas - moved) * plan.gpus_per_replica
    return QuotaCheck(decision or Decision(), replicas, gpus, overflow_gpus)


def check_quota(
    namespace: str,
    spec: LLMDeploymentSpec,
    plan: Plan,
    effective: EffectivePolicy,
    used: Mapping[str, int],
    *,
    overflow: Overflow | None = None,
) -> QuotaCheck:
    """Whether the deployment fits the namespace's quota next to `used` (namespace_usage, excluding itself), its
    replicas on the overflow pool (`overflow`, from its status) counted at that pool's product.

    Denied when not even spec.replicas.min replicas fit; when fewer than the starting replicas fit, allowed with a
    warning, and `replicas` says how many to run (the autoscaler's bounds keep it there)."""
    starting = starting_replicas(spec, plan)
    fitting = replicas_fitting(plan, effective, used, overflow, up_to=starting)
    if fitting is None:
        return _check(starting, plan, overflow)
    fit, quota = fitting
    counted = quota.value[0] or "GPUs of any product"
    held = _used_under(quota, used)
    minimum = spec.replicas.min
    if minimum > fit:
        wanted = _used_under(quota, placed_gpus(minimum, plan, overflow))
        message = (
            f"namespace {namespace} would hold {held + wanted} {counted} ({held} held by other "
            f"LLMDeployments + {_replicas_text(minimum, plan, overflow)}); "
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
        return _check(fit, plan, overflow, Decision(warnings=(warning,)))
    return _check(starting, plan, overflow)


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
    overflow: Overflow | None = None  # its replicas on the overflow pool now (status.placement)


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
    check = check_quota(request.namespace, request.spec, request.plan, effective, used, overflow=request.overflow)
    if not check.decision.allowed or not _quotas(request.plan, effective, request.overflow):
        return QuotaAdmission(check, None)
    overflow_product = request.overflow.product if request.overflow is not None and check.overflow_gpus else None
    mine = Reservation(
        request.name,
        request.uid,
        request.generation,
        request.plan.gpu_product,
        check.gpus,
        now.astimezone(UTC),
        overflow_product,
        check.overflow_gpus,
    )
    return QuotaAdmission(check, mine)
