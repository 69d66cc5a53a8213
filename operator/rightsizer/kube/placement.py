"""Which pool runs how many replicas: the primary pool always holds the desired count, and the replicas it cannot
schedule for lack of room run on the next pool in rank (the overflow), until the primary's own replicas have been
Ready long enough to take over again. Pure: a function of the pods' conditions, the live overflow replica count and
the clock, so the reconciler stays level-based (everything it needs across passes is in the cluster).

Why the primary keeps asking for every replica: its Pending pods are the probe that finds room again. When nodes
free up the scheduler places them (on the preferred GPU, in the preferred order) without rightsizer guessing at the
pool's free capacity, which it cannot see (other tenants' pods are not in its watches); only then, with those
replicas Ready, does the overflow shrink. Start on the primary, then remove from the overflow: the serving count
never drops below the desired one on the way back.

The scheduler's words are matched as kube-scheduler v1.35 writes them into the PodScheduled=False condition
(reason Unschedulable): "Insufficient <resource>" from the NodeResourcesFit plugin
(pkg/scheduler/framework/plugins/noderesources/fit.go) and "node(s) were unschedulable" from NodeUnschedulable
(cordoned nodes, pkg/scheduler/framework/plugins/nodeunschedulable). A pod Pending for another reason (a taint it
does not tolerate, a selector no node matches) is a configuration problem another pool would not cure, except on a
declared pool at its node limit, where no node will come.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rightsizer.api import constants as c
from rightsizer.api.conditions import Reason
from rightsizer.api.names import overflow_workload_name
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec, PlacementStatus, PoolReplicas
from rightsizer.policy.decision import policies_phrase
from rightsizer.sizing.ranking import RankedPool

JSON = Mapping[str, Any]

NO_ROOM_MARKERS = ("Insufficient ", "node(s) were unschedulable")
LWS_GROUP_INDEX = "leaderworkerset.sigs.k8s.io/group-index"


@dataclass(frozen=True)
class OverflowTarget:
    """The pool replicas may overflow onto, or why there is none (`blocked`: a sentence; the target is then kept
    only so that running overflow replicas can drain as the primary recovers)."""

    pool: str | None
    workload: str | None
    blocked: str | None = None
    ranked: RankedPool | None = None  # the pool's own plan


def overflow_target(
    name: str, spec: LLMDeploymentSpec, ranked: Sequence[RankedPool], forbidding_policies: Sequence[str]
) -> OverflowTarget:
    """The next pool in rank after the primary that has a plan of the same kind (a Deployment beside a Deployment,
    a LeaderWorkerSet beside a LeaderWorkerSet: one Service selects the serving pods of both, and a multi-node
    replica's serving pod is only its leader), and whether overflow onto it is allowed."""
    if not ranked or ranked[0].plan is None:
        return OverflowTarget(None, None, "there is no primary plan")
    primary = ranked[0].plan
    spans = primary.nodes_per_replica > 1
    fitting = [r for r in ranked[1:] if r.plan is not None]
    same_kind = [r for r in fitting if (r.plan is not None and r.plan.nodes_per_replica > 1) == spans]
    if not same_kind:
        if fitting:
            other = fitting[0]
            kind = "spans nodes (a LeaderWorkerSet)" if not spans else "fits one node (a Deployment)"
            why = f"pool {other.pool.name}'s plan {kind} unlike the primary's, and one Service cannot serve both"
        else:
            why = "no other allowed pool can hold the model"
        return OverflowTarget(None, None, why)
    chosen = same_kind[0]
    workload = overflow_workload_name(name, chosen.pool.name, spec.replicas.upper)
    placement = spec.placement
    blocked = None
    if forbidding_policies:
        verb = "forbids" if len(forbidding_policies) == 1 else "forbid"
        blocked = f"{policies_phrase(tuple(forbidding_policies))} {verb} it (allowed.overflow: false)"
    elif not placement.overflow_allowed(spec.gpu.products):
        blocked = (
            "spec.placement.overflow is Never"
            if placement.overflow is not None
            else "spec.gpu.products allows one product (set spec.placement.overflow: Allowed to overflow onto "
            "another pool of it)"
        )
    return OverflowTarget(chosen.pool.name, workload, blocked, chosen)


@dataclass(frozen=True)
class PlacementInputs:
    desired: int
    primary: str
    target: OverflowTarget
    pods: Sequence[JSON]
    current_overflow: int  # spec.replicas of the live overflow workload (0: none)
    now: datetime
    overflow_after_seconds: int
    return_after_seconds: int
    primary_at_node_limit: bool = False  # a declared pool whose nodes have all come (no node will be added)


@dataclass(frozen=True)
class Placement:
    primary_replicas: int
    overflow_replicas: int
    stuck: int  # primary replicas without room for longer than the grace period
    waiting: int  # primary replicas without room, still within the grace period
    settled: int  # primary replicas Ready for at least return_after_seconds
    covered_pods: frozenset[str]  # names of the stuck primary pods the overflow stands in for
    condition: tuple[bool, str, str]  # Overflowing: (status, reason, message)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _condition(pod: JSON, kind: str) -> JSON | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def no_room_since(pod: JSON, at_node_limit: bool) -> datetime | None:
    """When the scheduler first found no room for `pod` (PodScheduled=False's lastTransitionTime: the scheduler
    keeps it while the status stays False), or None when the pod is scheduled or Pending for another reason."""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.get("status") != "False" or scheduled.get("reason") != "Unschedulable":
        return None
    message = str(scheduled.get("message") or "")
    if not at_node_limit and not any(marker in message for marker in NO_ROOM_MARKERS):
        return None
    return _time(scheduled.get("lastTransitionTime"))


def ready_since(pod: JSON) -> datetime | None:
    ready = _condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    return _time(ready.get("lastTransitionTime"))


def replica_of(pod: JSON) -> str:
    """A replica's key: the LeaderWorkerSet group of a pod that spans nodes, else the pod itself."""
    meta = pod.get("metadata", {})
    group = (meta.get("labels") or {}).get(LWS_GROUP_INDEX)
    return f"group {group}" if group is not None else str(meta.get("name", ""))


def on_pool(pods: Sequence[JSON], pool: str) -> list[JSON]:
    return [
        p
        for p in pods
        if (p.get("metadata", {}).get("labels") or {}).get(c.LABEL_POOL) == pool
        and not p.get("metadata", {}).get("deletionTimestamp")
    ]


def decide(inputs: PlacementInputs) -> Placement:
    """How many replicas the overflow workload runs: at least the primary's stuck replicas (grow at once), at most
    what the overflow already runs or the primary's unsettled replicas (shrink only as the primary's replicas
    settle), never more than desired. A blocked target only drains."""
    primary_pods = on_pool(inputs.pods, inputs.primary)
    stuck: dict[str, list[str]] = {}
    waiting: set[str] = set()
    unsettled: set[str] = set()
    by_replica: dict[str, list[JSON]] = {}
    for pod in primary_pods:
        by_replica.setdefault(replica_of(pod), []).append(pod)
    for replica, pods in by_replica.items():
        for pod in pods:
            since = no_room_since(pod, inputs.primary_at_node_limit)
            if since is None:
                continue
            if (inputs.now - since).total_seconds() >= inputs.overflow_after_seconds:
                stuck.setdefault(replica, []).append(str(pod["metadata"]["name"]))
            else:
                waiting.add(replica)
        readies = [ready_since(pod) for pod in pods]
        settled = all(
            r is not None and (inputs.now - r).total_seconds() >= inputs.return_after_seconds for r in readies
        )
        if not settled:
            unsettled.add(replica)
    waiting -= stuck.keys()
    settled_count = max(0, min(inputs.desired, len(by_replica) - len(unsettled)))
    still_needed = inputs.desired - settled_count
    target = inputs.target
    can_grow = target.pool is not None and target.blocked is None
    keep = min(inputs.current_overflow, still_needed) if target.pool is not None else 0
    stuck_kept, waiting_kept = _kept(by_replica, set(stuck), waiting, inputs.desired)
    overflow = max(stuck_kept, keep) if can_grow else keep
    overflow = max(0, min(overflow, inputs.desired))
    covered = frozenset(name for names in stuck.values() for name in names) if overflow else frozenset()
    return Placement(
        primary_replicas=inputs.desired,
        overflow_replicas=overflow,
        stuck=stuck_kept,
        waiting=waiting_kept,
        settled=settled_count,
        covered_pods=covered,
        condition=_overflowing(inputs, overflow, stuck_kept, waiting_kept),
    )


def _scheduled(pod: JSON) -> bool:
    scheduled = _condition(pod, "PodScheduled")
    return bool(pod.get("spec", {}).get("nodeName")) or (scheduled is not None and scheduled.get("status") == "True")


def _group(replica: str) -> int | None:
    prefix, _, index = replica.partition(" ")
    return int(index) if prefix == "group" and index.isdigit() else None


def _kept(
    by_replica: Mapping[str, Sequence[JSON]], stuck: set[str], waiting: set[str], desired: int
) -> tuple[int, int]:
    """The stuck and waiting replicas still there once the primary workload is at `desired`: a scale-down removes
    the primary's Pending probes first, so it shrinks the overflow rather than growing it for pods about to go.

    A Deployment's ReplicaSet deletes unscheduled pods first, the newest of them first (ActivePodsWithRanks.Less in
    kubernetes pkg/controller/controller_utils.go: unassigned < assigned, then Pending, not Ready, ..., newer first),
    so the stuck ones (Pending longest) are the last of them to go. A LeaderWorkerSet scales its leader StatefulSet,
    which removes the highest group indices."""
    groups = {replica: _group(replica) for replica in by_replica}
    if by_replica and all(index is not None for index in groups.values()):
        kept = {replica for replica, index in groups.items() if (index or 0) < desired}
        return len(stuck & kept), len(waiting & kept)
    assigned = sum(1 for pods in by_replica.values() if all(_scheduled(pod) for pod in pods))
    unassigned_kept = max(0, min(len(by_replica) - assigned, desired - assigned))
    stuck_kept = min(len(stuck), unassigned_kept)
    return stuck_kept, min(len(waiting), unassigned_kept - stuck_kept)


def _overflowing(inputs: PlacementInputs, overflow: int, stuck: int, waiting: int) -> tuple[bool, str, str]:
    """The Overflowing condition. Its message holds no clock or scheduler text, so a steady state writes nothing."""
    primary, target = inputs.primary, inputs.target
    if overflow:
        return (
            True,
            Reason.PRIMARY_POOL_FULL,
            f"{overflow} of {inputs.desired} replicas run on pool {target.pool}: pool {primary} has had no room for "
            f"them for over {inputs.overflow_after_seconds} s; they return once pool {primary}'s replicas have been "
            f"Ready for {inputs.return_after_seconds} s",
        )
    if (stuck or waiting) and target.blocked is not None:
        return (
            False,
            Reason.OVERFLOW_NOT_ALLOWED,
            f"{stuck + waiting} replica(s) Pending for lack of room on pool {primary}; no overflow: {target.blocked}",
        )
    if stuck or waiting:
        return (
            False,
            Reason.WITHIN_GRACE_PERIOD,
            f"{stuck + waiting} replica(s) Pending for lack of room on pool {primary}; they overflow to pool "
            f"{target.pool} after {inputs.overflow_after_seconds} s",
        )
    where = f"; overflow: {target.blocked}" if target.blocked else f"; overflow pool: {target.pool}"
    return False, Reason.OVERFLOW_NOT_NEEDED, f"every replica has room on pool {primary}{where}"


def moved_message(placement: Placement, before: int, primary: str, target: str | None) -> str | None:
    """The Event's message when the overflow changes, or None."""
    after = placement.overflow_replicas
    if after == before:
        return None
    if after > before:
        return (
            f"{after - before} replica(s) moved to pool {target}: {placement.stuck} replica(s) of pool {primary} "
            f"found no room for longer than the grace period (overflow {before} -> {after})"
        )
    return (
        f"{before - after} replica(s) back on pool {primary}: its replicas have been Ready through the return "
        f"period (overflow on pool {target} {before} -> {after})"
    )


def at_node_limit(discovered_nodes: int, declared_max_nodes: int | None) -> bool:
    """A pool declared with maxNodes whose nodes have all come: no node will be added, so any reason a pod cannot be
    scheduled there is a lack of room. A pool only discovered has no known limit."""
    return declared_max_nodes is not None and discovered_nodes >= declared_max_nodes


def workload_replicas(workload: JSON | None) -> tuple[int, int]:
    """(spec.replicas, status.readyReplicas) of a live Deployment or LeaderWorkerSet; (0, 0) for none."""
    if workload is None:
        return 0, 0
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    return int(spec.get("replicas") or 0), int(status.get("readyReplicas") or 0)


def placement_status(primary: PoolReplicas, overflow: PoolReplicas | None) -> PlacementStatus:
    """status.placement: one entry per workload and the summary kubectl get shows ("h200 1/3, h100 2/2 overflow":
    ready of asked)."""
    entries = [primary] if overflow is None else [primary, overflow]
    summary = ", ".join(
        f"{e.pool} {e.ready_replicas}/{e.replicas}" + (" overflow" if e.role == "overflow" else "") for e in entries
    )
    return PlacementStatus(summary=summary, pools=entries)


@dataclass(frozen=True)
class PoolCount:
    """One pool's replicas of a deployment, from its pods (for the autoscaler's capacity across pools)."""

    in_force: int  # every pod scheduled: Ready or starting on a node of the pool
    ready: int  # every pod Ready
    no_room: int  # a pod Pending for lack of room (NO_ROOM_MARKERS): the pool is full for now


def count_on_pool(pods: Sequence[JSON], pool: str) -> PoolCount:
    by_replica: dict[str, list[JSON]] = {}
    for pod in on_pool(pods, pool):
        by_replica.setdefault(replica_of(pod), []).append(pod)
    replicas = by_replica.values()
    return PoolCount(
        in_force=sum(1 for group in replicas if all(_scheduled(pod) for pod in group)),
        ready=sum(1 for group in replicas if all(ready_since(pod) is not None for pod in group)),
        no_room=sum(1 for group in replicas if any(no_room_since(pod, False) is not None for pod in group)),
    )
