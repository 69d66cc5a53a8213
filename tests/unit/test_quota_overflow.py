"""Quotas count GPUs per product across pools: replicas that overflow onto the next pool (status.placement) are
charged at that pool's product and GPUs per replica (status.pools), in the cache's charges, the webhook's admission
and reservation, and the reconciler's and autoscaler's replica bounds."""

from __future__ import annotations

from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, PlacementStatus, PoolReplicas
from rightsizer.api.v1alpha1.plan import PoolPlan
from rightsizer.policy import (
    AdmissionRequest,
    GpuCharge,
    Overflow,
    admit,
    charge_of,
    check_quota,
    namespace_usage,
    overflow_of,
    replica_bounds,
)
from tests.unit.helpers import spec_of
from tests.unit.test_policy import H100, H200, NOW, SMALL, effective, plan_with, policy

JSON = dict[str, Any]
ON_H200 = plan_with(gpu_product=H200, pool="h200", gpus_per_replica=1, tensor_parallel_size=1)
H200_POOL = PoolPlan(rank=1, pool="h200", gpu_product=H200, fits=True, gpus_per_replica=1, why="primary")
H100_POOL = PoolPlan(rank=2, pool="h100", gpu_product=H100, fits=True, gpus_per_replica=2, why="costs more")
# 3 replicas: 1 runs on h200 (1 GPU each), 2 overflowed onto h100 (TP 2 there: 2 GPUs each).
OVERFLOW = Overflow(H100, 2, replicas=2, of=3)


def placement(overflow: int, replicas: int = 3) -> PlacementStatus:
    entries = [PoolReplicas(pool="h200", role="primary", workload="chat", replicas=replicas)]
    if overflow:
        entries.append(PoolReplicas(pool="h100", role="overflow", workload="chat-h100", replicas=overflow))
    return PlacementStatus(summary="", pools=entries)


def overflowing(name: str, overflow: int = 2, replicas: int = 3) -> LLMDeployment:
    status: JSON = {
        "observedGeneration": 1,
        "replicas": replicas,
        "plan": ON_H200.to_wire(),
        "pools": [p.to_wire() for p in (H200_POOL, H100_POOL)],
        "placement": placement(overflow, replicas).to_wire(),
    }
    meta = {"name": name, "uid": f"uid-{name}", "generation": 1}
    spec = {"model": {"name": SMALL}, "replicas": {"min": 1, "max": 8, "desired": replicas}}
    return LLMDeployment.model_validate({"metadata": meta, "spec": spec, "status": status})


def test_an_overflowing_deployment_is_charged_where_its_replicas_run() -> None:
    """Before: 3 × 1 GPU, all on H200; the 4 H100 GPUs its overflow replicas hold were counted nowhere."""
    charge = charge_of(overflowing("a"))
    assert charge == GpuCharge("a", "uid-a", 1, H200, 1, 1, H100, 4)
    assert namespace_usage([charge]) == {H200: 1, H100: 4}
    assert charge_of(overflowing("b", overflow=0)) == GpuCharge("b", "uid-b", 1, H200, 3, 1)


@pytest.mark.parametrize(
    ("replicas", "on_overflow"),
    [(0, 0), (1, 0), (2, 1), (3, 2), (5, 2)],  # a scale-down keeps the primary's replica; a scale-up asks it first
)
def test_which_replicas_run_on_the_overflow_pool(replicas: int, on_overflow: int) -> None:
    assert OVERFLOW.on_overflow(replicas) == on_overflow


def test_overflow_of_reads_the_placement_and_the_pools_plan() -> None:
    assert overflow_of(placement(2), [H200_POOL, H100_POOL], 3) == OVERFLOW
    assert overflow_of(placement(0), [H200_POOL, H100_POOL], 3) is None
    assert overflow_of(placement(2), [H200_POOL], 3) is None  # the pool no longer ranks: not charged there
    assert overflow_of(None, [H200_POOL, H100_POOL], 3) is None


def test_a_neighbours_overflow_counts_against_a_quota_on_its_product() -> None:
    """An H100 quota of 4 with a neighbour's 2 overflow replicas on H100 (4 GPUs): no room for another H100
    deployment. Before, the neighbour counted as 3 H200 GPUs and this was allowed."""
    quota = effective(policy("h100-budget", limits={"namespaceQuota": [{"product": "H100", "maxGpus": 4}]}))
    used = namespace_usage([charge_of(overflowing("neighbour"))])
    on_h100 = plan_with(gpus_per_replica=2, gpu_product=H100)
    check = check_quota("team-a", spec_of(SMALL), on_h100, quota, used)
    assert not check.decision.allowed
    assert f"would hold 6 {H100} (4 held by other LLMDeployments" in check.decision.message()


@pytest.mark.parametrize(
    ("quota", "used", "upper", "before"),
    [
        # H200 quota 4: 1 on h200 + new replicas on h200 (the primary first) -> 6; before, 4 (every replica on H200)
        ({"product": "H200", "maxGpus": 4}, {}, 6, 4),
        # H100 quota 8 with 6 held elsewhere: the overflow's 2 × 2 GPUs do not fit; 2 replicas (one overflow) do
        ({"product": "H100", "maxGpus": 8}, {H100: 6}, 2, 8),
        # any product, 10: 1 + 4 in force, then 1 GPU per replica on h200 -> 8; before, 10
        ({"maxGpus": 10}, {}, 8, 8),
    ],
)
def test_replica_bounds_count_the_overflow_at_its_product(
    quota: JSON, used: dict[str, int], upper: int, before: int
) -> None:
    spec = spec_of(SMALL, replicas={"min": 1, "max": 8})
    e = effective(policy("budget", limits={"namespaceQuota": [quota]}))
    assert replica_bounds(spec, ON_H200, e, used, OVERFLOW).upper == upper
    assert replica_bounds(spec, ON_H200, e, used).upper == min(before, 8)


def test_admission_reserves_the_overflows_gpus_on_its_product() -> None:
    """A spec change of an overflowing deployment: its reservation holds its H100 GPUs too, and a quota on H100
    alone is checked (before, only quotas on the plan's product were)."""
    quota = effective(policy("h100-budget", limits={"namespaceQuota": [{"product": "H100", "maxGpus": 4}]}))
    spec = spec_of(SMALL, replicas={"min": 1, "max": 8, "desired": 3})
    request = AdmissionRequest("team-a", "a", "uid-a", 2, spec, ON_H200, OVERFLOW)
    outcome = admit(request, quota, [], [], NOW)
    assert outcome.check.decision.allowed
    assert outcome.reservation is not None
    reservation = outcome.reservation
    assert (reservation.product, reservation.gpus, reservation.overflow_product, reservation.overflow_gpus) == (
        H200,
        1,
        H100,
        4,
    )
    assert namespace_usage([], [reservation]) == {H200: 1, H100: 4}
    crowded = admit(request, quota, [GpuCharge("b", "uid-b", 1, H100, 2, 1)], [], NOW)
    # 2 held elsewhere + its own 4 overflow GPUs > 4: room for 2 replicas (1 on h200, 1 on h100)
    assert (crowded.check.replicas, crowded.check.gpus, crowded.check.overflow_gpus) == (2, 1, 2)
    assert "room for 2 of the 3 replicas" in crowded.check.decision.warnings[0]
