"""The autoscaler across pools, as tables: each pool's replicas count at that pool's own plan's capacity
(scaling.capacity), the decision plans with those capacities (a scale-down keeps the primary's replicas, one more
replica adds the rate of the pool it will land on), the replicas per pool from the pods (kube.placement.count_on_pool)
and the ready replicas summed over the primary and overflow workloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.kube.placement import PoolCount, count_on_pool
from rightsizer.scaling.capacity import PoolCapacity, PoolShare, pool_capacity
from rightsizer.scaling.decision import Behavior, Observation, Targets, recommend
from rightsizer.scaling.status import replica_counts
from tests.unit.test_placement import pending, ready

JSON = dict[str, Any]
H200, H100 = 2.0, 1.2  # req/s one replica of each pool's own plan serves within the SLO


@dataclass(frozen=True)
class CapacityRow:
    primary: int
    overflow: int | None  # None: no overflow pool
    primary_full: bool
    allowed: bool
    expected: PoolCapacity
    overflow_rps: float | None = H100


CAPACITY_ROWS = {
    "one pool: every replica at the primary's rate": CapacityRow(3, None, False, False, PoolCapacity((), H200, "h200")),
    "an overflow pool with nothing on it: the same": CapacityRow(3, 0, False, True, PoolCapacity((), H200, "h200")),
    "overflowing: each pool's replicas at its own rate, the primary's first": CapacityRow(
        1, 2, True, True, PoolCapacity((H200, H100, H100), H100, "h100")
    ),
    "overflowing, the primary has room again: one more goes to the primary": CapacityRow(
        3, 2, False, True, PoolCapacity((H200, H200, H200, H100, H100), H200, "h200")
    ),
    "the primary full, nothing overflowed yet: one more lands on the overflow pool": CapacityRow(
        2, 0, True, True, PoolCapacity((H200, H200), H100, "h100")
    ),
    "the primary full, overflow forbidden: one more waits for the primary": CapacityRow(
        2, 0, True, False, PoolCapacity((), H200, "h200")
    ),
    "overflow forbidden after the fact: draining replicas still count at their rate": CapacityRow(
        1, 1, True, False, PoolCapacity((H200, H100), H200, "h200")
    ),
    "no figures for the overflow's GPU: counted at the primary's rate": CapacityRow(
        1, 1, True, True, PoolCapacity((H200, H200), H200, "h100"), overflow_rps=None
    ),
}


@pytest.mark.parametrize("row", CAPACITY_ROWS.values(), ids=CAPACITY_ROWS.keys())
def test_pool_capacity(row: CapacityRow) -> None:
    overflow = None if row.overflow is None else PoolShare("h100", row.overflow, row.overflow_rps)
    got = pool_capacity(
        PoolShare("h200", row.primary, H200), overflow, primary_full=row.primary_full, overflow_allowed=row.allowed
    )
    assert got == row.expected


def test_no_model_for_the_primary_means_reactive_only() -> None:
    overflow = PoolShare("h100", 1, H100)
    got = pool_capacity(PoolShare("h200", 2, None), overflow, primary_full=True, overflow_allowed=True)
    assert got == PoolCapacity((), None, None)


@dataclass(frozen=True)
class DecisionRow:
    demand: float  # req/s
    in_force: tuple[float, ...]
    next_rps: float
    replicas: int
    primary_everywhere: int  # what the primary's rate for every replica gave (the behaviour before)


BEHAVIOR = Behavior(min_replicas=1, max_replicas=20, rate_spread=0.0, forecast_s=0.0)
OVERFLOWING = (H200, H100, H100)  # 1 on h200, 2 on h100: 4.4 req/s in force
DECISION_ROWS = {
    "the load the three carry: hold 3 (one h200 and two h100 replicas are 4.4 req/s, not 6)": DecisionRow(
        4.4, OVERFLOWING, H100, 3, 3
    ),
    "more than they carry, the primary full: one more at h100's rate": DecisionRow(5.0, OVERFLOWING, H100, 4, 3),
    "two h100 replicas' worth more: two more, not one h200's worth": DecisionRow(6.8, OVERFLOWING, H100, 5, 4),
    "room on the primary again: one more adds h200's rate": DecisionRow(6.0, OVERFLOWING, H200, 4, 3),
    "a scale-down keeps the primary's replica and drops the overflow's": DecisionRow(3.2, OVERFLOWING, H100, 2, 2),
    "...down to the primary alone": DecisionRow(1.9, OVERFLOWING, H100, 1, 1),
    "h200 replicas first: three of them hold what three h200s hold": DecisionRow(
        5.9, (H200, H200, H200, H100), H200, 3, 3
    ),
    "nothing to serve: none for capacity": DecisionRow(0.0, OVERFLOWING, H100, 0, 0),
}


@pytest.mark.parametrize("row", DECISION_ROWS.values(), ids=DECISION_ROWS.keys())
def test_the_decision_plans_with_each_pools_capacity(row: DecisionRow) -> None:
    obs = Observation(time=0.0, request_rate=row.demand)
    across = Targets(None, None, row.next_rps, 64, row.in_force)
    replicas, reason = recommend(obs, across, BEHAVIOR, len(row.in_force))
    if row.demand:
        assert (replicas, reason.split(":")[0]) == (row.replicas, "capacity")
    else:
        assert replicas == row.replicas
    primary_everywhere = Targets(None, None, H200, 64)
    assert recommend(obs, primary_everywhere, BEHAVIOR, len(row.in_force))[0] == row.primary_everywhere


def test_one_pool_in_force_is_the_single_pool_estimate() -> None:
    """The same rate for every replica gives the count the single-pool path gives, at any demand."""
    for demand in (0.5, 2.0, 3.99, 4.0, 4.01, 9.3):
        obs = Observation(time=0.0, request_rate=demand)
        single = recommend(obs, Targets(None, None, H200, 64), BEHAVIOR, 3)[0]
        ladder = recommend(obs, Targets(None, None, H200, 64, (H200,) * 3), BEHAVIOR, 3)[0]
        assert single == ladder


def test_headroom_applies_to_every_pool() -> None:
    behavior = Behavior(min_replicas=1, max_replicas=20, rate_spread=0.0, forecast_s=0.0, headroom=0.5)
    obs = Observation(time=0.0, request_rate=1.6)  # needs 3.2 req/s of capacity at half
    assert recommend(obs, Targets(None, None, H100, 64, OVERFLOWING), behavior, 3)[0] == 2  # 2.0 + 1.2


# --- counting from the pods -------------------------------------------------------------------------------------


def starting(name: str, pool: str) -> JSON:
    return {
        "metadata": {"name": name, "labels": {"rightsizer.dev/pool": pool}},
        "spec": {"nodeName": f"{pool}-0"},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }


def leaving(pod: JSON) -> JSON:
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod


PODS = [
    ready("chat-a", 900),
    pending("chat-b", 400),
    pending("chat-c", 10),
    ready("chat-h100-a", 300, pool="h100"),
    starting("chat-h100-b", "h100"),
    leaving(ready("chat-h100-c", 900, pool="h100")),
]


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        ("h200", PoolCount(in_force=1, ready=1, no_room=2)),  # two Pending for lack of room, within grace or not
        ("h100", PoolCount(in_force=2, ready=1, no_room=0)),  # one starting counts in force; a leaving one not
        ("b200", PoolCount(in_force=0, ready=0, no_room=0)),
    ],
)
def test_count_on_pool(pool: str, expected: PoolCount) -> None:
    assert count_on_pool(PODS, pool) == expected


def test_ready_replicas_are_summed_over_the_primary_and_the_overflow() -> None:
    spec = LLMDeploymentSpec.model_validate(
        {"model": {"name": "m"}, "slo": {"ttftP95Ms": 500}, "replicas": {"min": 1, "max": 6, "desired": 3}}
    )
    primary, overflow = {"status": {"readyReplicas": 1}}, {"status": {"readyReplicas": 2}}
    counts = replica_counts(spec, {}, [primary, overflow])
    assert counts is not None and (counts.current, counts.ready, counts.starting) == (3, 3, 0)


def test_what_the_replicas_in_force_serve() -> None:
    """Each replica at its own pool's capacity across pools; on one pool, every replica at one replica's."""
    assert PoolCapacity((1.5, 1.5, 0.9), 0.9, "h100").serving_rps(3) == pytest.approx(3.9)
    assert PoolCapacity((), 1.4, "h200").serving_rps(3) == pytest.approx(4.2)
    assert PoolCapacity((), None, None).serving_rps(3) is None  # no model: nothing to draw
