"""Status conditions: shapes, transitions, and lastTransitionTime that moves only on a flip."""

from rightsizer.api.v1alpha1.common import Condition
from rightsizer.kube.status import StatusInputs, WorkloadObservation, conditions, observe, set_condition


def inputs(
    ready: int = 2,
    desired: int = 2,
    exists: bool = True,
    error: tuple[str, str] | None = None,
    unschedulable: str | None = None,
    now: str = "2026-01-01T00:00:00Z",
    previous: list[Condition] | None = None,
) -> StatusInputs:
    obs = WorkloadObservation(exists, desired, ready, ready, True, unschedulable)
    return StatusInputs(
        generation=3,
        now=now,
        plan=None,
        sizing_error=error,
        policy_violation=None,
        observation=obs,
        replicas=desired,
        selector="x=y",
        previous_conditions=previous or [],
    )


def by_type(conds: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in conds}


def test_ready_requires_a_plan() -> None:
    conds = by_type(conditions(inputs()))
    assert conds["Ready"].status == "False" and conds["Ready"].reason == "NotSized"
    assert all(c.observed_generation == 3 for c in conds.values())


def test_sizing_failure_keeps_running_replicas_and_degrades() -> None:
    conds = by_type(conditions(inputs(error=("NoFeasiblePlan", "spec.gpu.products: no pool"))))
    assert conds["Sized"].status == "False" and conds["Sized"].reason == "NoFeasiblePlan"
    assert conds["Degraded"].status == "True" and "running replicas kept" in conds["Degraded"].message
    assert conds["Available"].status == "True"


def test_unschedulable_pods_are_reported() -> None:
    message = "0/7 nodes are available: 4 Insufficient nvidia.com/gpu."
    conds = by_type(conditions(inputs(ready=1, unschedulable=message)))
    assert conds["Progressing"].reason == "Unschedulable" and message in conds["Degraded"].message


def waiting(now: str, deadline: float = 600) -> dict[str, Condition]:
    """One of two replicas pending since midnight."""
    obs = WorkloadObservation(True, 2, 1, 1, True, "Insufficient nvidia.com/gpu", "2026-01-01T00:00:00Z")
    base = inputs(now=now)
    return by_type(
        conditions(StatusInputs(**{**base.__dict__, "observation": obs, "progress_deadline_seconds": deadline}))
    )


def test_waiting_for_a_node_is_progress_until_the_deadline() -> None:
    """A scale-up waiting for a node is routine: Degraded only once the pod has waited past the progress deadline
    (kube/progress.py), so Argo CD says Progressing, not Degraded, while a node is added."""
    early = waiting("2026-01-01T00:09:59Z")
    assert (early["Degraded"].status, early["Degraded"].reason) == ("False", "AsExpected")
    assert "Insufficient nvidia.com/gpu" in early["Degraded"].message and "600 s" in early["Degraded"].message
    assert (early["Progressing"].status, early["Progressing"].reason) == ("True", "Unschedulable")
    late = waiting("2026-01-01T00:10:00Z")
    assert (late["Degraded"].status, late["Degraded"].reason) == ("True", "Unschedulable")
    assert late["Degraded"].message.endswith(": Insufficient nvidia.com/gpu")
    assert waiting("2026-01-01T00:00:30Z", deadline=30)["Degraded"].status == "True"


def test_the_message_does_not_tick() -> None:
    """The message is the same on every resync, so a waiting replica causes no status write per pass."""
    assert waiting("2026-01-01T00:01:00Z")["Degraded"].message == waiting("2026-01-01T00:02:00Z")["Degraded"].message
    assert waiting("2026-01-01T00:11:00Z")["Degraded"].message == waiting("2026-01-01T00:12:00Z")["Degraded"].message


def test_transition_time_only_moves_on_flip() -> None:
    first = conditions(inputs(ready=0, now="t1"))
    second = conditions(inputs(ready=0, now="t2", previous=first))
    assert by_type(second)["Available"].last_transition_time == "t1"
    third = conditions(inputs(ready=2, now="t3", previous=second))
    assert by_type(third)["Available"].last_transition_time == "t3"


def test_set_condition_orders_by_type() -> None:
    conds = set_condition([], Condition(type="Ready", status="True", reason="R", last_transition_time="t"))
    conds = set_condition(conds, Condition(type="Sized", status="True", reason="R", last_transition_time="t"))
    assert [c.type for c in conds] == ["Sized", "Ready"]


def test_observe_reads_deployment_status_and_pending_pods() -> None:
    workload = {
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 2},
    }
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "Insufficient gpu"}
            ]
        },
    }
    obs = observe(workload, [pod], 2)
    assert (obs.ready, obs.updated, obs.observed_current, obs.unschedulable) == (1, 2, True, "Insufficient gpu")


PSA_REFUSAL = (
    'pods "chat-7d4b9c6f5-x2k8q" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation '
    '!= false (container "vllm" must set securityContext.allowPrivilegeEscalation=false)'
)


def test_pods_the_api_server_refuses_are_reported_with_its_message() -> None:
    """The Deployment controller copies its ReplicaSet's ReplicaFailure condition (reason FailedCreate) with the
    server's refusal; before, the LLMDeployment said only "0/1 replicas ready"."""
    progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": PSA_REFUSAL}
    workload = {
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "conditions": [progressing, failure]},
    }
    obs = observe(workload, [], 1)
    assert obs.failed_create == PSA_REFUSAL
    base = inputs(ready=0, desired=1)
    conds = by_type(conditions(StatusInputs(**{**base.__dict__, "observation": obs})))
    assert (conds["Progressing"].status, conds["Progressing"].reason) == ("False", "FailedCreate")
    assert conds["Progressing"].message == PSA_REFUSAL
    assert (conds["Degraded"].status, conds["Degraded"].reason) == ("True", "FailedCreate")
    healed = {**workload, "status": {"observedGeneration": 1, "conditions": [progressing]}}
    assert observe(healed, [], 1).failed_create is None
