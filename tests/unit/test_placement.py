"""Overflow onto the next pool, as tables: kube.placement.decide (the pods' conditions, the live overflow count and
the clock -> replicas per pool and the Overflowing condition), overflow_target (which pool, and whether it is
allowed), the overflow workload's name, the ranked per-pool plans, and one reconcile that overflows, holds still,
and comes back."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.conditions import Reason
from rightsizer.api.names import max_name_length, name_problem, overflow_workload_name
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller.reconcile import Observed, Reconciler
from rightsizer.facts.catalog import lookup
from rightsizer.kube.placement import (
    OverflowTarget,
    PlacementInputs,
    decide,
    no_room_since,
    overflow_target,
)
from rightsizer.model.config import parse
from rightsizer.sizing import SizingRequest
from rightsizer.sizing.planner import plan_with_pools
from rightsizer.sizing.pools import default_pools
from tests.unit.fake_kube import FakeKube
from tests.unit.test_discovery import node
from tests.unit.test_reconcile import llmd

JSON = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
# kube-scheduler v1.35's message for a pod no node has room for (NodeResourcesFit, then the preemption summary).
NO_ROOM = (
    "0/7 nodes are available: 4 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/7 nodes are available: 4 No preemption victims found for incoming pod, 3 Preemption is not "
    "helpful for scheduling."
)
TAINTED = "0/7 nodes are available: 7 node(s) had untolerated taint {nvidia.com/gpu: present}."
CORDONED = "0/7 nodes are available: 4 node(s) were unschedulable, 3 node(s) didn't match Pod's node affinity."


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def pending(name: str, seconds: float, message: str = NO_ROOM, pool: str = "h200") -> JSON:
    return {
        "metadata": {"name": name, "labels": {"rightsizer.dev/pool": pool}},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": stamp(seconds),
                }
            ],
        },
    }


def ready(name: str, seconds: float, pool: str = "h200") -> JSON:
    return {
        "metadata": {"name": name, "labels": {"rightsizer.dev/pool": pool}},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(seconds + 5)},
                {"type": "Ready", "status": "True", "lastTransitionTime": stamp(seconds)},
            ],
        },
    }


OPEN = OverflowTarget("h100", "chat-h100")
FORBIDDEN = OverflowTarget("h100", "chat-h100", "SizingPolicy no-overflow forbids it (allowed.overflow: false)")


@dataclass(frozen=True)
class Row:
    pods: tuple[JSON, ...]
    current: int  # the live overflow workload's replicas
    overflow: int  # what decide() asks of it
    reason: str
    desired: int = 3
    target: OverflowTarget = OPEN
    at_limit: bool = False


GRACE, RETURN = 120, 300
ROWS = {
    "every replica has room: no overflow": Row(
        (ready("a", 900), ready("b", 900), ready("c", 900)), 0, 0, Reason.OVERFLOW_NOT_NEEDED
    ),
    "Pending within the grace period: wait": Row(
        (ready("a", 900), pending("b", 60), pending("c", 60)), 0, 0, Reason.WITHIN_GRACE_PERIOD
    ),
    "Pending past the grace period: overflow them": Row(
        (ready("a", 900), pending("b", 121), pending("c", 200)), 0, 2, Reason.PRIMARY_POOL_FULL
    ),
    "exactly at the grace period counts": Row(
        (ready("a", 900), pending("b", 120), ready("c", 900)), 0, 1, Reason.PRIMARY_POOL_FULL
    ),
    "a second replica runs out of room: grow at once": Row(
        (ready("a", 900), pending("b", 400), pending("c", 130)), 1, 2, Reason.PRIMARY_POOL_FULL
    ),
    "steady overflow: the same count": Row(
        (ready("a", 900), pending("b", 400), pending("c", 400)), 2, 2, Reason.PRIMARY_POOL_FULL
    ),
    "room again, Ready but not for long: keep the overflow (hysteresis)": Row(
        (ready("a", 900), ready("b", 30), ready("c", 30)), 2, 2, Reason.PRIMARY_POOL_FULL
    ),
    "room again, one settled: shrink by one": Row(
        (ready("a", 900), ready("b", 301), ready("c", 30)), 2, 1, Reason.PRIMARY_POOL_FULL
    ),
    "room again, all settled: the overflow goes": Row(
        (ready("a", 900), ready("b", 301), ready("c", 301)), 2, 0, Reason.OVERFLOW_NOT_NEEDED
    ),
    "scheduled but not Ready yet: keep the overflow": Row(
        (ready("a", 900), {"metadata": {"name": "b", "labels": {"rightsizer.dev/pool": "h200"}}}, ready("c", 900)),
        1,
        1,
        Reason.PRIMARY_POOL_FULL,
    ),
    "a scale-down removes the primary's Pending pods, so the overflow shrinks first": Row(
        (ready("a", 900), pending("b", 400)), 2, 1, Reason.PRIMARY_POOL_FULL, desired=2
    ),
    # A scale-down of spec.replicas.desired, in the pass that lowers it: the primary workload still has the pods
    # it is about to delete (its ReplicaSet deletes unscheduled pods first), so the overflow shrinks first.
    "scale-down 3 -> 2: the Pending probe goes, the overflow with it": Row(
        (ready("a", 900), ready("b", 900), pending("c", 400)), 1, 0, Reason.OVERFLOW_NOT_NEEDED, desired=2
    ),
    "scale-down 3 -> 2 while two are stuck: the overflow loses one, the primary none": Row(
        (ready("a", 900), pending("b", 400), pending("c", 400)), 2, 1, Reason.PRIMARY_POOL_FULL, desired=2
    ),
    "scale-down 3 -> 1 while two are stuck: the overflow goes, the primary's Ready replica stays": Row(
        (ready("a", 900), pending("b", 400), pending("c", 400)), 2, 0, Reason.OVERFLOW_NOT_NEEDED, desired=1
    ),
    "scale-down 4 -> 2 as two run out of room: no overflow for pods about to go": Row(
        (ready("a", 900), ready("b", 900), pending("c", 400), pending("d", 400)),
        0,
        0,
        Reason.OVERFLOW_NOT_NEEDED,
        desired=2,
    ),
    "never more than desired": Row((pending("a", 400), pending("b", 400)), 5, 2, Reason.PRIMARY_POOL_FULL, desired=2),
    "a taint no pool cures is not a lack of room": Row(
        (ready("a", 900), pending("b", 400, TAINTED)), 0, 0, Reason.OVERFLOW_NOT_NEEDED
    ),
    "...unless the pool is declared at its node limit": Row(
        (ready("a", 900), pending("b", 400, TAINTED)), 0, 1, Reason.PRIMARY_POOL_FULL, at_limit=True
    ),
    "cordoned nodes are a lack of room": Row(
        (ready("a", 900), pending("b", 400, CORDONED)), 0, 1, Reason.PRIMARY_POOL_FULL
    ),
    "the overflow pool's own pods do not count as the primary's": Row(
        (ready("a", 900), pending("x", 400, pool="h100")), 0, 0, Reason.OVERFLOW_NOT_NEEDED, desired=1
    ),
    "forbidden: they stay Pending, with the reason": Row(
        (ready("a", 900), pending("b", 400), pending("c", 400)), 0, 0, Reason.OVERFLOW_NOT_ALLOWED, target=FORBIDDEN
    ),
    "forbidden after the fact: running overflow only drains": Row(
        (ready("a", 900), ready("b", 301), pending("c", 400)), 2, 1, Reason.PRIMARY_POOL_FULL, target=FORBIDDEN
    ),
    "no overflow pool at all": Row(
        (ready("a", 900), pending("b", 400)),
        0,
        0,
        Reason.OVERFLOW_NOT_ALLOWED,
        target=OverflowTarget(None, None, "no other pool"),
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_decide(row: Row) -> None:
    placement = decide(
        PlacementInputs(row.desired, "h200", row.target, row.pods, row.current, NOW, GRACE, RETURN, row.at_limit)
    )
    assert placement.overflow_replicas == row.overflow
    assert placement.primary_replicas == row.desired  # the primary always asks for every replica: its probe
    assert placement.condition[1] == row.reason
    assert placement.condition[0] is (row.overflow > 0)


def test_a_scale_down_of_a_leaderworkerset_keeps_the_lowest_groups() -> None:
    """Its leader StatefulSet removes the highest group indices: a stuck group 1 stays at desired 2, a stuck
    group 2 goes."""

    def group(index: str, pod: JSON) -> JSON:
        pod["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-index"] = index
        return pod

    stuck_last = (group("0", ready("a", 900)), group("1", ready("b", 900)), group("2", pending("c", 400)))
    assert decide(PlacementInputs(2, "h200", OPEN, stuck_last, 1, NOW, GRACE, RETURN)).overflow_replicas == 0
    stuck_middle = (group("0", ready("a", 900)), group("1", pending("b", 400)), group("2", ready("c", 900)))
    assert decide(PlacementInputs(2, "h200", OPEN, stuck_middle, 1, NOW, GRACE, RETURN)).overflow_replicas == 1


def test_covered_pods_are_the_stuck_ones_only_while_overflowing() -> None:
    pods = (ready("a", 900), pending("b", 400), pending("c", 10))
    placement = decide(PlacementInputs(3, "h200", OPEN, pods, 0, NOW, GRACE, RETURN))
    assert placement.covered_pods == frozenset({"b"})  # c is still within grace: Progressing keeps reporting it
    blocked = decide(PlacementInputs(3, "h200", FORBIDDEN, pods, 0, NOW, GRACE, RETURN))
    assert blocked.covered_pods == frozenset()
    assert "forbids it" in blocked.condition[2]


def test_a_multi_node_replica_counts_once() -> None:
    """A LeaderWorkerSet group's pods are one replica: two stuck pods of group 1 are one replica to move."""
    pods = []
    for group, age in (("0", None), ("1", 400.0)):
        for worker in ("0", "1"):
            pod = ready(f"lws-{group}-{worker}", 900) if age is None else pending(f"lws-{group}-{worker}", age)
            pod["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-index"] = group
            pods.append(pod)
    assert decide(PlacementInputs(2, "h200", OPEN, pods, 0, NOW, GRACE, RETURN)).overflow_replicas == 1


def test_the_condition_message_holds_no_clock() -> None:
    """A steady state writes nothing: the message is the same a minute later."""
    pods = (ready("a", 900), pending("b", 400))
    first = decide(PlacementInputs(2, "h200", OPEN, pods, 1, NOW, GRACE, RETURN)).condition
    later = decide(PlacementInputs(2, "h200", OPEN, pods, 1, NOW + timedelta(minutes=1), GRACE, RETURN)).condition
    assert first == later


def test_no_room_since_reads_the_schedulers_transition_time() -> None:
    assert no_room_since(pending("b", 400), False) == NOW - timedelta(seconds=400)
    assert no_room_since(ready("a", 1), False) is None
    assert no_room_since(pending("b", 400, TAINTED), False) is None


# --- names ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pool", "replicas", "expected"),
    [
        ("chat", "h100", 3, "chat-h100"),
        ("chat", "H100 SXM", 3, "chat-h100-sxm"),
        ("chat", "7", 3, "chat-pool-7"),  # chat-7 would be a LeaderWorkerSet group's StatefulSet
    ],
)
def test_overflow_workload_name(name: str, pool: str, replicas: int, expected: str) -> None:
    assert overflow_workload_name(name, pool, replicas) == expected


def test_a_long_overflow_name_is_cut_within_the_limit_and_stays_distinct() -> None:
    name = "a" * max_name_length(10)
    first, second = (overflow_workload_name(name, pool, 10) for pool in ("h100-spot", "h100-reserved"))
    assert first != second
    for derived in (first, second):
        assert len(derived) <= max_name_length(10)
        assert name_problem(derived, 10) is None  # valid wherever the name itself is


# --- which pool, and whether it may be used ---------------------------------------------------------------------


def ranked_for(products: list[str], **spec: Any) -> tuple[LLMDeploymentSpec, list[Any]]:
    body = llmd("llama-3.1-70b-h200-overflow-h100.yaml")
    body["spec"]["gpu"]["products"] = products
    body["spec"].pop("placement")
    body["spec"].update(spec)
    parsed = LLMDeploymentSpec.model_validate(body["spec"])
    config = lookup("meta-llama/Llama-3.1-70B-Instruct")
    assert config is not None
    facts = parse(config)
    pools = default_pools()
    second_h200 = replace(next(p for p in pools if p.name == "h200"), name="h200-reserved", price_per_gpu_hour=None)
    _, ranked = plan_with_pools(SizingRequest(parsed, facts, [*pools, second_h200]), parsed.model.name)
    return parsed, ranked


def test_each_pool_is_sized_for_its_own_gpu_and_says_why_it_ranks_there() -> None:
    spec, ranked = ranked_for(["H200", "H100"])
    assert [r.entry.pool for r in ranked] == ["h200", "h200-reserved", "h100"]
    h200, reserved, h100 = (r.entry for r in ranked)
    assert reserved.why.endswith("ties with h200, listed after it in the pools' order")
    assert (h200.rank, h200.tensor_parallel_size) == (1, 1)  # 70B in FP8 fits one 141 GB H200...
    assert (h100.rank, h100.tensor_parallel_size) == (3, 2)  # ...but not one 80 GB H100
    assert h200.why.startswith("primary:")
    assert "after h200: costs more" in h100.why
    target = overflow_target("chat", spec, ranked, ())
    assert (target.pool, target.workload, target.blocked) == ("h200-reserved", "chat-h200-reserved", None)


@pytest.mark.parametrize(
    ("products", "placement", "policies", "blocked"),
    [
        (["H200"], None, (), "spec.gpu.products allows one product"),
        (["H200", "H100"], {"overflow": "Never"}, (), "spec.placement.overflow is Never"),
        (["H200", "H100"], None, ("no-overflow",), "SizingPolicy no-overflow forbids it (allowed.overflow: false)"),
        (["H200", "H100"], {"overflow": "Allowed"}, (), None),
    ],
)
def test_whether_overflow_is_allowed(
    products: list[str], placement: JSON | None, policies: tuple[str, ...], blocked: str | None
) -> None:
    spec, ranked = ranked_for(products, **({"placement": placement} if placement else {}))
    target = overflow_target("chat", spec, ranked, policies)
    if blocked is None:
        assert target.blocked is None
    else:
        assert target.blocked is not None and target.blocked.startswith(blocked)


# --- one reconcile after another ----------------------------------------------------------------------------------

H200 = tuple(node(f"h200-{i}", "NVIDIA-H200", pool="h200") for i in range(2))
H100 = tuple(node(f"h100-{i}", "NVIDIA-H100-80GB-HBM3", pool="h100", memory="81559") for i in range(2))


class World:
    """A FakeKube, a reconciler on a settable clock, and what the watches would deliver next."""

    def __init__(self, policies: tuple[JSON, ...] = ()) -> None:
        self.now = NOW
        self.kube = FakeKube()
        body = llmd("llama-3.1-70b-h200-overflow-h100.yaml")
        body["metadata"]["name"] = "chat"
        self.kube.put(body)
        self.key = ("rightsizer.dev/v1alpha1", "LLMDeployment", "team-a", "chat")
        self.reconciler = Reconciler(
            self.kube, OperatorSettings(allow_hub=False), clock=lambda: self.now.isoformat().replace("+00:00", "Z")
        )
        self.observed = Observed(nodes=[*H200, *H100], policies=[SizingPolicy.model_validate(p) for p in policies])

    def body(self) -> JSON:
        return copy.deepcopy(self.kube.objects[self.key].body)

    def status(self) -> JSON:
        return dict(self.body()["status"])

    def condition(self, kind: str) -> JSON:
        return next(c for c in self.status()["conditions"] if c["type"] == kind)

    def workload(self, name: str) -> JSON | None:
        stored = self.kube.objects.get(("apps/v1", "Deployment", "team-a", name))
        return None if stored is None else stored.body

    def reconcile(self, pods: list[JSON]) -> list[Any]:
        self.observed.pods = list(pods)
        self.kube.writes.clear()
        return self.reconciler.reconcile(self.body(), self.observed)


def test_overflow_then_steady_then_back() -> None:
    world = World()
    world.reconcile([])
    primary = world.workload("chat")
    assert primary is not None and primary["spec"]["replicas"] == 2

    # The h200 pool is full: one replica Pending past the grace period moves to h100, sized with h100's plan.
    pods = [ready("chat-a", 900), pending("chat-b", 200)]
    events = world.reconcile(pods)
    assert ("Normal", "Overflowed") in [(e.type, e.reason) for e in events]
    overflow = world.workload("chat-h100")
    assert overflow is not None and overflow["spec"]["replicas"] == 1
    args = overflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert overflow["spec"]["selector"]["matchLabels"]["rightsizer.dev/pool"] == "h100"
    assert overflow["spec"]["template"]["metadata"]["labels"]["rightsizer.dev/pool"] == "h100"
    primary = world.workload("chat")
    assert primary is not None and primary["spec"]["replicas"] == 2  # it keeps probing for room
    assert world.condition("Overflowing")["status"] == "True"
    assert world.status()["placement"]["summary"] == "h200 0/2, h100 0/1 overflow"
    service = world.kube.objects[("v1", "Service", "team-a", "chat")].body
    assert "rightsizer.dev/pool" not in service["spec"]["selector"]  # one Service over both pools

    # A second pass over its own output writes nothing.
    assert world.reconcile(pods) == []
    assert world.kube.writes == []

    # Room again: the Pending replica is Ready on h200 but not for long: the overflow stays...
    world.now += timedelta(seconds=60)
    pods = [ready("chat-a", 960), ready("chat-b", 30)]
    world.reconcile(pods)
    assert world.workload("chat-h100") is not None
    # ...until it has been Ready through the return period; then the overflow workload goes.
    world.now += timedelta(seconds=300)
    pods = [ready("chat-a", 1260), ready("chat-b", 330)]
    events = world.reconcile(pods)
    assert ("Normal", "Returned") in [(e.type, e.reason) for e in events]
    assert world.workload("chat-h100") is None
    assert world.condition("Overflowing")["status"] == "False"


def test_a_policy_forbidding_overflow_keeps_them_pending_and_says_so() -> None:
    policy = {"metadata": {"name": "no-overflow"}, "spec": {"namespaceSelector": {}, "allowed": {"overflow": False}}}
    world = World(policies=(policy,))
    world.reconcile([])
    world.reconcile([ready("chat-a", 900), pending("chat-b", 900)])
    assert world.workload("chat-h100") is None
    overflowing = world.condition("Overflowing")
    assert (overflowing["status"], overflowing["reason"]) == ("False", Reason.OVERFLOW_NOT_ALLOWED)
    assert "SizingPolicy no-overflow forbids it" in overflowing["message"]
    assert world.condition("Degraded")["reason"] == "Unschedulable"  # not covered by any overflow
