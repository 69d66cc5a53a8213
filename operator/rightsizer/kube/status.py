"""Status from what was computed and observed. Pure: the same inputs give the same status, and a condition's
lastTransitionTime moves only when its status flips (as metav1.Condition requires)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rightsizer.api.conditions import CONDITION_ORDER, ConditionType, PolicyConditionType, Reason
from rightsizer.api.v1alpha1.common import Condition
from rightsizer.api.v1alpha1.cost import CostStatus
from rightsizer.api.v1alpha1.llmdeployment import AutoscalingStatus, PlacementStatus, StartupStatus
from rightsizer.api.v1alpha1.plan import Plan, PoolPlan
from rightsizer.kube.progress import DEFAULT_PROGRESS_DEADLINE_SECONDS, past_deadline, unschedulable_since

JSON = Mapping[str, Any]


@dataclass(frozen=True)
class WorkloadObservation:
    """What the workload child (Deployment or LeaderWorkerSet) and its pods report."""

    exists: bool
    desired: int
    updated: int
    ready: int
    observed_current: bool  # the child's status reflects its latest spec (observedGeneration == generation)
    unschedulable: str | None = None  # the scheduler's message for a pending pod, if any
    unschedulable_since: str | None = None  # when the longest-waiting pending pod became unschedulable (RFC 3339)
    failed_create: str | None = None  # why the workload's controller cannot create pods (admission refused them)


def observe(
    workload: JSON | None, pods: Sequence[JSON], desired: int, overflow: JSON | None = None
) -> WorkloadObservation:
    """The primary workload, and the overflow workload when there is one (its replicas count towards the desired
    total); `pods` leaves out the primary's Pending pods the overflow stands in for."""
    if workload is None:
        return WorkloadObservation(
            False, desired, 0, 0, False, _unschedulable(pods), unschedulable_since=unschedulable_since(pods)
        )
    workloads = [workload] if overflow is None else [workload, overflow]
    statuses = [w.get("status", {}) or {} for w in workloads]
    return WorkloadObservation(
        exists=True,
        desired=desired,
        updated=sum(int(s.get("updatedReplicas", 0) or 0) for s in statuses),
        ready=sum(int(s.get("readyReplicas", 0) or 0) for s in statuses),
        observed_current=all(
            s.get("observedGeneration", w.get("metadata", {}).get("generation"))
            == w.get("metadata", {}).get("generation")
            for w, s in zip(workloads, statuses, strict=True)
        ),
        unschedulable=_unschedulable(pods),
        unschedulable_since=unschedulable_since(pods),
        failed_create=next((f for s in statuses if (f := _failed_create(s))), None),
    )


def _failed_create(status: JSON) -> str | None:
    """The ReplicaFailure condition a Deployment copies from its ReplicaSet when the API server refuses its pods
    (reason FailedCreate: a Pod Security Standard, a quota, a LimitRange, an admission webhook), with the server's
    message (kubernetes pkg/controller/replicaset and deployment/util: SetDeploymentCondition ReplicaFailure)."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "pods cannot be created")
    return None


def _unschedulable(pods: Sequence[JSON]) -> str | None:
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        for condition in pod.get("status", {}).get("conditions", []) or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                return str(condition.get("message") or condition.get("reason") or "unschedulable")
    return None


def set_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of the same type, keeping its lastTransitionTime if the status did not change."""
    result = []
    replaced = False
    for existing in conditions:
        if existing.type == new.type:
            keep_time = existing.status == new.status
            result.append(
                new.model_copy(update={"last_transition_time": existing.last_transition_time}) if keep_time else new
            )
            replaced = True
        else:
            result.append(existing)
    if not replaced:
        result.append(new)
    order = {t: i for i, t in enumerate(CONDITION_ORDER)}
    return sorted(result, key=lambda c: order.get(c.type, len(order)))


@dataclass(frozen=True)
class StatusInputs:
    generation: int
    now: str
    plan: Plan | None
    sizing_error: tuple[str, str] | None  # (reason, message) when sizing failed
    policy_violation: tuple[str, str] | None  # (reason, message) when policy denies
    observation: WorkloadObservation
    replicas: int
    selector: str
    previous_conditions: Sequence[Condition] = ()
    autoscaling: AutoscalingStatus | None = None
    policy_note: str | None = None  # warnings from policy that do not stop the plan (e.g. quota holds replicas)
    apply_error: str | None = None  # the API server refused a child (e.g. an immutable field, a name clash)
    child_conflict: str | None = None  # a child's name is taken by an object this LLMDeployment does not control
    progress_deadline_seconds: float = DEFAULT_PROGRESS_DEADLINE_SECONDS  # unschedulable this long: Degraded
    cost: CostStatus | None = None  # status.cost (kube/cost.py)
    startup: StartupStatus | None = None  # status.startup (kube/startup.py)
    pools: Sequence[PoolPlan] = ()  # every allowed pool's own plan, ranked (sizing/ranking.py)
    placement: PlacementStatus | None = None  # replicas per pool
    overflowing: tuple[bool, str, str] | None = None  # the Overflowing condition (kube/placement.py), when placed


def _condition(kind: str, ok: bool, reason: str, message: str, inputs: StatusInputs) -> Condition:
    return Condition(
        type=kind,
        status="True" if ok else "False",
        reason=reason,
        message=message,
        last_transition_time=inputs.now,
        observed_generation=inputs.generation,
    )


def conditions(inputs: StatusInputs) -> list[Condition]:
    obs = inputs.observation
    out = list(inputs.previous_conditions)
    if inputs.sizing_error is not None:
        reason, message = inputs.sizing_error
        out = set_condition(out, _condition(ConditionType.SIZED, False, reason, message, inputs))
    elif inputs.plan is not None:
        p = inputs.plan
        message = (
            f"{p.gpus_per_replica} × {p.gpu_product} per replica (TP {p.tensor_parallel_size}, PP "
            f"{p.pipeline_parallel_size}) on pool {p.pool}; max-num-seqs {p.max_num_seqs}, "
            f"{p.kv_cache_tokens:,} KV tokens"
        )
        out = set_condition(out, _condition(ConditionType.SIZED, True, Reason.PLANNED, message, inputs))
    if inputs.policy_violation is not None:
        reason, message = inputs.policy_violation
        out = set_condition(out, _condition(ConditionType.POLICY_COMPLIANT, False, reason, message, inputs))
    elif any(c.type == ConditionType.POLICY_COMPLIANT for c in out) or inputs.plan is not None:
        note = f"complies with policy; {inputs.policy_note}" if inputs.policy_note else "complies with policy"
        out = set_condition(out, _condition(ConditionType.POLICY_COMPLIANT, True, Reason.COMPLIANT, note, inputs))

    rolling = obs.exists and (not obs.observed_current or obs.updated < obs.desired or obs.ready < obs.desired)
    if not obs.exists and inputs.plan is None:
        progressing = _condition(
            ConditionType.PROGRESSING, False, Reason.NOT_STARTED, "no workload: the spec cannot be sized", inputs
        )
    elif inputs.child_conflict is not None:
        progressing = _condition(ConditionType.PROGRESSING, False, Reason.CHILD_CONFLICT, inputs.child_conflict, inputs)
    elif obs.failed_create:
        progressing = _condition(ConditionType.PROGRESSING, False, Reason.FAILED_CREATE, obs.failed_create, inputs)
    elif obs.unschedulable:
        progressing = _condition(ConditionType.PROGRESSING, True, Reason.UNSCHEDULABLE, obs.unschedulable, inputs)
    elif rolling or not obs.exists:
        progressing = _condition(
            ConditionType.PROGRESSING,
            True,
            Reason.ROLLING_OUT,
            f"{obs.ready}/{obs.desired} replicas ready, {obs.updated} updated",
            inputs,
        )
    else:
        progressing = _condition(
            ConditionType.PROGRESSING, False, Reason.COMPLETE, f"{obs.ready}/{obs.desired} replicas ready", inputs
        )
    out = set_condition(out, progressing)

    available = obs.ready >= max(obs.desired, 1) if obs.desired > 0 else obs.exists
    reason = (
        Reason.MINIMUM_REPLICAS_AVAILABLE
        if available
        else (Reason.SCALED_TO_ZERO if obs.desired == 0 else Reason.WAITING)
    )
    out = set_condition(
        out,
        _condition(ConditionType.AVAILABLE, available, reason, f"{obs.ready} of {obs.desired} replicas ready", inputs),
    )

    degraded_reason, degraded_message = _degradation(inputs)
    out = set_condition(
        out,
        _condition(
            ConditionType.DEGRADED,
            degraded_reason is not None,
            degraded_reason or Reason.AS_EXPECTED,
            degraded_message,
            inputs,
        ),
    )
    if inputs.overflowing is not None:
        ok, reason, message = inputs.overflowing
        out = set_condition(out, _condition(ConditionType.OVERFLOWING, ok, reason, message, inputs))
    blocked, why = _not_ready(inputs, available)
    return set_condition(out, _condition(ConditionType.READY, blocked is None, blocked or Reason.READY, why, inputs))


def _not_ready(inputs: StatusInputs, available: bool) -> tuple[str | None, str]:
    """Why the deployment is not serving as specified (the first blocking cause), or (None, 'serving')."""
    obs = inputs.observation
    if inputs.sizing_error is not None or inputs.plan is None:
        return Reason.NOT_SIZED, inputs.sizing_error[1] if inputs.sizing_error else "no plan yet"
    if inputs.policy_violation is not None:
        return Reason.POLICY_VIOLATION, inputs.policy_violation[1]
    if inputs.apply_error is not None:
        return Reason.APPLY_FAILED, inputs.apply_error
    if inputs.child_conflict is not None:
        return Reason.CHILD_CONFLICT, inputs.child_conflict
    if obs.failed_create and not available:
        return Reason.FAILED_CREATE, obs.failed_create
    if not available:
        return (
            (Reason.UNSCHEDULABLE, obs.unschedulable)
            if obs.unschedulable
            else (Reason.WAITING, f"{obs.ready} of {obs.desired} replicas ready")
        )
    return None, "serving"


def _degradation(inputs: StatusInputs) -> tuple[str | None, str]:
    obs = inputs.observation
    if inputs.sizing_error is not None and obs.exists:
        return Reason.SIZING_FAILED, f"running replicas kept as they are; {inputs.sizing_error[1]}"
    if inputs.policy_violation is not None and obs.exists:
        return Reason.POLICY_VIOLATION, f"running replicas kept; no scale-up; {inputs.policy_violation[1]}"
    if inputs.apply_error is not None:
        return Reason.APPLY_FAILED, inputs.apply_error
    if inputs.child_conflict is not None:
        return Reason.CHILD_CONFLICT, inputs.child_conflict
    if obs.failed_create:
        return Reason.FAILED_CREATE, obs.failed_create
    if obs.unschedulable and obs.ready < obs.desired:
        deadline = inputs.progress_deadline_seconds
        if past_deadline(obs.unschedulable_since, inputs.now, deadline):
            return Reason.UNSCHEDULABLE, f"a replica has waited for a node for over {deadline:g} s: {obs.unschedulable}"
        # Routine (a scale-up, a node being added): progress until the deadline (kube/progress.py).
        return None, f"waiting for a node, Degraded after {deadline:g} s: {obs.unschedulable}"
    return None, "all is as planned"


def status_fields(inputs: StatusInputs) -> dict[str, Any]:
    """The status object to write (camelCase), excluding nothing: compare it with the live status to skip writes."""
    from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentStatus

    status = LLMDeploymentStatus(
        observed_generation=inputs.generation,
        conditions=conditions(inputs),
        plan=inputs.plan,
        pools=list(inputs.pools),
        placement=inputs.placement,
        replicas=inputs.replicas,
        ready_replicas=inputs.observation.ready,
        selector=inputs.selector,
        autoscaling=inputs.autoscaling,
        cost=inputs.cost,
        startup=inputs.startup,
    )
    return status.to_wire()


def policy_status(generation: int, problems: Sequence[str], previous: Sequence[Condition], now: str) -> dict[str, Any]:
    """A SizingPolicy's status: Accepted, or the problems that make parts of it unusable."""
    accepted = not problems
    condition = Condition(
        type=PolicyConditionType.ACCEPTED,
        status="True" if accepted else "False",
        reason=Reason.VALID if accepted else Reason.INVALID_POLICY,
        message="the policy is in force" if accepted else "; ".join(problems),
        last_transition_time=now,
        observed_generation=generation,
    )
    conditions = set_condition(previous, condition)
    return {"observedGeneration": generation, "conditions": [c.to_wire() for c in conditions]}
