"""When waiting for GPUs stops being routine. Pure.

A replica whose pod the scheduler cannot place yet is what every scale-up looks like on a cluster that adds GPU nodes
on demand (cluster-autoscaler, Karpenter: minutes to provision), and what a roll-out looks like while the old
replicas still hold the GPUs. So an unschedulable pod is progress, not failure, until it has waited longer than the
progress deadline: the same rule and default as a Deployment's `spec.progressDeadlineSeconds` (600 s; after it the
Deployment controller sets Progressing=False, reason ProgressDeadlineExceeded, and Argo CD's Deployment health turns
Degraded). The wait is measured from the pod's PodScheduled=False lastTransitionTime, which the scheduler sets when it
first fails to place the pod and keeps while the pod stays unschedulable (podutil.UpdatePodCondition moves it only
when the status flips), so it works the same for Deployments and LeaderWorkerSets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600  # kubernetes: apps/v1 Deployment spec.progressDeadlineSeconds default


def unschedulable_since(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """RFC 3339 time since which the longest-waiting unschedulable pod has waited, or None (also when no such pod
    carries a readable time)."""
    times = []
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                try:
                    times.append(
                        (_parse(str(condition.get("lastTransitionTime"))), str(condition["lastTransitionTime"]))
                    )
                except (ValueError, KeyError):
                    continue
    return min(times)[1] if times else None


def waited_seconds(since: str, now: str) -> float:
    return (_parse(now) - _parse(since)).total_seconds()


def past_deadline(since: str | None, now: str, deadline_seconds: float) -> bool:
    """True once a pod has been unschedulable for the deadline or longer. A time that does not parse counts as
    just now: a replica is never declared stuck on a timestamp nobody can read."""
    if since is None:
        return False
    try:
        return waited_seconds(since, now) >= deadline_seconds
    except ValueError:
        return False


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
