"""The autoscaler's pure pieces around the decision: whether a deployment is scaled at all, its replica counts,
the behaviour and targets the decision gets, and status.autoscaling (what changed, and whether to write it)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from rightsizer.api.v1alpha1.llmdeployment import AutoscalingStatus, LLMDeploymentSpec, ScalingDecision
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.perf import Replica
from rightsizer.perf.in_force import expected_length, mixed_capacity_rps, predicted_p95, slo_of
from rightsizer.policy import ReplicaBounds
from rightsizer.scaling.decision import Behavior, Decision, Observation, Targets
from rightsizer.scaling.window import WindowStats

JSON = Mapping[str, Any]
HISTORY = 10  # decisions kept in status.autoscaling.history
WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")
OBSERVED_FIELDS = ("observedTtftP95Ms", "observedItlP95Ms", "waitingRequests", "runningRequests")


def autoscaling_active(spec: LLMDeploymentSpec) -> bool:
    """On when enabled, with an SLO target to hold and room between replicas.min and replicas.max."""
    has_target = spec.slo.ttft_p95_ms is not None or spec.slo.itl_p95_ms is not None
    return spec.autoscaling.enabled and has_target and spec.replicas.upper > spec.replicas.min


@dataclass(frozen=True)
class Counts:
    current: int  # replicas in force: ready and starting
    ready: int

    @property
    def starting(self) -> int:
        return max(0, self.current - self.ready)


def replica_counts(spec: LLMDeploymentSpec, status: JSON, workloads: JSON | Sequence[JSON] | None) -> Counts | None:
    """What is in force now; None before the reconciler has set any replica count. Ready replicas are summed over
    the deployment's workloads (the primary and, while overflowing, the overflow pool's)."""
    current = spec.replicas.desired if spec.replicas.desired is not None else status.get("replicas")
    if current is None:
        return None
    each = [workloads] if workloads is None or isinstance(workloads, Mapping) else list(workloads)
    ready = sum(int(((w or {}).get("status") or {}).get("readyReplicas") or 0) for w in each)
    return Counts(int(current), min(ready, int(current)))


# The most a measured start-up stretches the forecast: a pod stuck for an hour before it became Ready is not what the
# next replica will cost, and a trend carried an hour ahead would ask for replicas nobody needs.
MAX_LEAD_TIME_S = 600.0


def behavior_of(
    spec: LLMDeploymentSpec, bounds: ReplicaBounds, window_seconds: float, lead_time_s: float | None = None
) -> Behavior:
    """`lead_time_s`: the pool's measured p95 start-up (status.startup), how far ahead a rising rate is planned
    for; None keeps the default (a minute) until a replica has started."""
    a = spec.autoscaling
    behavior = Behavior(
        min_replicas=bounds.lower,
        max_replicas=bounds.upper,
        scale_up_window_s=float(a.scale_up_stabilization_seconds),
        scale_down_window_s=float(a.scale_down_stabilization_seconds),
        scale_to_zero=a.scale_to_zero,
        window_s=window_seconds,
    )
    if lead_time_s is None:
        return behavior
    return replace(behavior, forecast_s=min(max(lead_time_s, 0.0), MAX_LEAD_TIME_S))


def targets_of(
    spec: LLMDeploymentSpec, plan: Plan, capacity: float | None, in_force: tuple[float, ...] = ()
) -> Targets:
    """`capacity`: what one more replica adds; `in_force`: the replicas' own capacities across pools
    (scaling.capacity), empty when every replica has `capacity`."""
    slo = slo_of(spec)
    return Targets(slo.ttft_p95_s, slo.itl_p95_s, capacity, plan.max_num_seqs, in_force)


def observation_of(stats: WindowStats, now: float, expected: tuple[float, float] | None = None) -> Observation:
    """`expected`: the calibrated model's p95 TTFT and ITL at this window's load (perf.in_force.predicted_p95)."""
    return Observation(
        time=now,
        request_rate=stats.request_rate or 0.0,
        ttft_p95_s=stats.ttft_p95_s,
        itl_p95_s=stats.itl_p95_s,
        waiting=stats.waiting,
        running=stats.running,
        kv_usage=stats.kv_usage,
        expected_ttft_p95_s=expected[0] if expected else None,
        expected_itl_p95_s=expected[1] if expected else None,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 1)


def next_status(
    previous: AutoscalingStatus | None,
    *,
    obs: Observation,
    targets: Targets,
    decision: Decision,
    replicas: int,
    current: int,
    now: str,
) -> AutoscalingStatus:
    """status.autoscaling after a decision: the observation, the targets, the count chosen and, when it changed
    the count, one more history entry (the last HISTORY kept). Pure."""
    history = list(previous.history) if previous is not None else []
    last_scale = previous.last_scale_time if previous is not None else None
    if replicas != current:
        history = [
            *history,
            ScalingDecision(time=now, from_replicas=current, to_replicas=replicas, reason=decision.reason),
        ]
        last_scale = now
    return AutoscalingStatus(
        observed_ttft_p95_ms=_ms(obs.ttft_p95_s),
        observed_itl_p95_ms=_ms(obs.itl_p95_s),
        target_ttft_p95_ms=_ms(targets.ttft_p95_s),
        target_itl_p95_ms=_ms(targets.itl_p95_s),
        waiting_requests=round(obs.waiting, 1),
        running_requests=round(obs.running, 1),
        desired_replicas=replicas,
        reason=decision.reason,
        last_scale_time=last_scale,
        history=history[-HISTORY:],
    )


def status_wire(status: AutoscalingStatus) -> dict[str, Any]:
    """The status as a merge patch: every field present, unset ones as null so a patch clears them."""
    return status.model_dump(by_alias=True, mode="json")


def _shape(reason: object) -> str:
    """A reason without its figures: "capacity: 2.31 req/s over …" and "capacity: 2.35 req/s over …" agree."""
    return re.sub(r"\d+(\.\d+)?", "#", str(reason))


def needs_write(previous: JSON | None, new: JSON, *, refresh_due: bool) -> bool:
    """Whether status.autoscaling must be written: the decision, its kind of reason or the targets changed, or the
    observed values changed and a refresh is due. Pure."""
    if previous is None:
        return True
    for key, value in new.items():
        if key in OBSERVED_FIELDS:
            continue
        before = previous.get(key)
        if key == "reason" and _shape(before) == _shape(value):
            continue
        if before != value:
            return True
    return refresh_due and any(previous.get(k) != new.get(k) for k in OBSERVED_FIELDS)


def previous_status(body: JSON) -> tuple[JSON | None, AutoscalingStatus | None]:
    raw = (body.get("status") or {}).get("autoscaling")
    if not raw:
        return None, None
    try:
        return raw, AutoscalingStatus.model_validate(raw)
    except ValidationError:
        return raw, None


def window_lengths(spec: LLMDeploymentSpec, stats: WindowStats) -> tuple[float, float]:
    """The mean prompt and output lengths to plan with: the window's, shrunk towards the declared workload by how
    few requests finished in it (perf.in_force.expected_length)."""
    w = spec.workload
    return (
        expected_length(stats.mean_prompt_tokens, stats.finished, w.input_tokens),
        expected_length(stats.mean_generation_tokens, stats.finished, w.output_tokens),
    )


def window_capacity_rps(spec: LLMDeploymentSpec, replica: Replica | None, stats: WindowStats) -> float | None:
    """One replica's request rate within the SLO at the lengths expected from the window (None: no model)."""
    if replica is None:
        return None
    return mixed_capacity_rps(replica, *window_lengths(spec, stats), slo_of(spec))


def expected_p95(
    spec: LLMDeploymentSpec, stats: WindowStats, replica: Replica | None, ready: int
) -> tuple[float, float] | None:
    """The (calibrated) model's p95 TTFT and ITL at the window's load per ready replica and expected lengths."""
    if replica is None or stats.request_rate is None:
        return None
    return predicted_p95(replica, *window_lengths(spec, stats), stats.request_rate / max(1, ready))
