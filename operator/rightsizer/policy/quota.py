"""The per-namespace GPU quota: GPUs per replica × replicas, summed over a namespace's LLMDeployments, per product
(or over every product), against limits.namespaceQuota.

Usage comes from two places. The operator's cache shows what each LLMDeployment holds once it has been sized
(status.plan, status.replicas). Between admission and that moment the object holds a *reservation* in a
per-namespace ledger (docs/policy.md): admissions read the ledger, decide with `admit`, and write the ledger back
with the version they read (compare-and-swap), so of two concurrent admissions that only one fits, the second
either reads the first's reservation or fails its write and decides again. Everything here is pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.policy.decision import Decision, Violation, ViolationKind, allow_phrase, policies_phrase
from rightsizer.policy.effective import EffectivePolicy, Sourced, product_key

RESERVATION_GRACE = timedelta(minutes=5)
"""How long a reservation outlives its object's absence from the cache: far longer than watch lag, short enough that
a create refused later in the admission chain does not hold GPUs for long."""


@dataclass(frozen=True)
class GpuCharge:
    """What one LLMDeployment holds, as the operator's cache shows it (see charge_of)."""

    name: str
    uid: str
    observed_generation: int
    product: str | None  # None: not sized yet
    gpus: int


@dataclass(frozen=True)
class Reservation:
    """GPUs an admitted LLMDeployment may hold before its status shows them."""

    name: str
    uid: str
    generation: int
    product: str
    gpus: int
    reserved_at: str  # RFC 3339


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
    if plan is None:
        return GpuCharge(name, uid, generation, None, 0)
    running = status.replicas if status is not None and status.replicas is not None else 0
    replicas = max(running, starting_replicas(deployment.spec, plan))
    return GpuCharge(name, uid, generation, plan.gpu_product, plan.gpus_per_replica * replicas)


# --- the ledger -------------------------------------------------------------------------------------------------------


def encode_ledger(reservations: Iterable[Reservation]) -> str:
    """The ledger as the annotation value stored on the namespace's ledger object (compact, sorted by name)."""
    rows = sorted(reservations, key=lambda r: r.name)
    return json.dumps([asdict(r) for r in rows], separators=(",", ":"), sort_keys=True)


def decode_ledger(text: str | None) -> tuple[Reservation, ...]:
    """Reservations from the annotation value; raises ValueError naming the problem when it is malformed (deny
    rather than guess: a lost reservation could let the quota be overrun)."""
    if not text:
        return ()
    try:
        rows: Any = json.loads(text)
        return tuple(Reservation(**row) for row in rows)
    except (ValueError, TypeError) as err:
        raise ValueError(f"the GPU-quota ledger is malformed ({err}); delete it to rebuild it from status") from None


def _age(reservation: Reservation, now: datetime) -> timedelta:
    return now - datetime.fromisoformat(reservation.reserved_at)


def live_reservations(
    reservations: Iterable[Reservation],
    charges: Iterable[GpuCharge],
    now: datetime,
    grace: timedelta = RESERVATION_GRACE,
) -> tuple[Reservation, ...]:
    """Reservations still needed: not yet superseded by the cache (the same object, sized from the reserved
    generation or a later one), and not dangling (the object is absent from the cache beyond `grace`)."""
    by_name = {c.name: c for c in charges}
    kept = []
    for r in reservations:
        seen = by_name.get(r.name)
        if seen is not None and seen.uid == r.uid:
            if seen.observed_generation < r.generation:
                kept.append(r)
        elif _age(r, now) < grace:
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
    ledger: tuple[Reservation, ...] | None  # to write back (compare-and-swap); None: nothing to write


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
    ledger: Sequence[Reservation],
    now: datetime,
    *,
    grace: timedelta = RESERVATION_GRACE,
) -> QuotaAdmission:
    """One attempt of a quota admission against the ledger as read (see the module docstring).

    Allowed with a quota in force: the returned ledger adds this object's reservation (and drops stale ones); the
    caller must write it with the version it read, and on a conflict read again and call `admit` again. Denied, or
    no quota on the plan's product: nothing to write."""
    live = live_reservations(ledger, charges, now, grace)
    used = namespace_usage(charges, live, excluding=request.name)
    check = check_quota(request.namespace, request.spec, request.plan, effective, used)
    if not check.decision.allowed or not effective.quota_for(request.plan.gpu_product):
        return QuotaAdmission(check, None)
    mine = Reservation(
        request.name,
        request.uid,
        request.generation,
        request.plan.gpu_product,
        check.gpus,
        now.astimezone(UTC).isoformat(),
    )
    return QuotaAdmission(check, (*(r for r in live if r.name != request.name), mine))
