"""The condition types and reasons rightsizer writes: status.conditions[].type and .reason, and Event reasons.

One constant per name, each followed by its one sentence, as LeaderWorkerSet's API declares its conditions. The
tables in docs/operator.md are generated from these sentences (hack/conditions_table.py; tests/unit/test_docs.py
fails when they drift). A reason's sentence reads `Where: meaning.`: where it appears (Condition=Status, or an
Event), then what it means. Reasons are CamelCase, as metav1.Condition requires. PolicyCompliant=False carries the
kind of the first policy violation as its reason: those are rightsizer.policy.decision.ViolationKind.
"""

from typing import Final


class ConditionType:
    """The conditions of an LLMDeployment, in the order status lists them (CONDITION_ORDER)."""

    SIZED: Final = "Sized"
    """True when a plan exists for the current spec; False when the spec cannot be sized, the reason saying why
    (a plan sized earlier keeps serving)."""

    POLICY_COMPLIANT: Final = "PolicyCompliant"
    """True when the plan complies with every SizingPolicy selecting the namespace (their warnings, such as a quota
    holding replicas, are in the message); False with the first violation's kind as the reason."""

    PROGRESSING: Final = "Progressing"
    """True while a rollout or scale is under way or pods wait for the scheduler; False when it is complete or
    cannot go on."""

    AVAILABLE: Final = "Available"
    """True when every desired replica is ready (with zero desired: when the workload exists)."""

    DEGRADED: Final = "Degraded"
    """True when something needs a person: sizing or policy failed while earlier replicas keep serving, the API
    server refused a child or its pods, a child's name is taken, or a pod has been unschedulable for longer than
    RIGHTSIZER_PROGRESS_DEADLINE_SECONDS (a shorter wait for a node is routine, as in any scale-up)."""

    OVERFLOWING: Final = "Overflowing"
    """True while replicas the primary pool has no room for run on the next pool in status.pools (a second
    workload, sized for that pool's GPU); False when every replica has room, or with the reason overflow waits or is
    not allowed."""

    READY: Final = "Ready"
    """True when the deployment serves as specified (sized, policy-compliant, applied, every desired replica ready);
    False with the first cause that blocks it, so `kubectl wait --for=condition=Ready` waits for serving."""

    PREDICTION_ACCURATE: Final = "PredictionAccurate"
    """True when the observed mean TTFT and inter-token latency stay within the performance model's held-out interval
    at the load the deployment carries; False when one has been outside it for a sustained window; Unknown before a
    window with enough requests (written by the autoscaler)."""


class PolicyConditionType:
    """The condition of a SizingPolicy."""

    ACCEPTED: Final = "Accepted"
    """True when the SizingPolicy is sound and in force; False listing the problems that make parts of it
    unusable."""


CONDITION_ORDER: Final = (
    ConditionType.SIZED,
    ConditionType.POLICY_COMPLIANT,
    ConditionType.PROGRESSING,
    ConditionType.AVAILABLE,
    ConditionType.DEGRADED,
    ConditionType.OVERFLOWING,
    ConditionType.READY,
    ConditionType.PREDICTION_ACCURATE,
)


class Reason:
    """Condition and Event reasons. The sentence names where each appears, then what it means."""

    PLANNED: Final = "Planned"
    """Sized=True, and a Normal event when the plan changes: the plan in one line (GPUs, parallelism, pool, batch
    limits, KV tokens)."""

    NO_FEASIBLE_PLAN: Final = "NoFeasiblePlan"
    """Sized=False and a Warning event: no allowed pool and shape holds the model at the spec's context length and
    batch limits; the message names the field to change."""

    SLO_UNREACHABLE: Final = "SLOUnreachable"
    """Sized=False and a Warning event: a latency target in spec.slo is missed on every allowed GPU even by one
    request alone, so more replicas would not help."""

    MODEL_CONFIG_UNAVAILABLE: Final = "ModelConfigUnavailable"
    """Sized=False and a Warning event: the model's config.json cannot be read (Hub unreachable, gated without a
    token, ConfigMap missing) or describes something rightsizer cannot size; the message names the key."""

    INVALID_SPEC: Final = "InvalidSpec"
    """Sized=False (and a Warning event when the schema admitted it): the spec is invalid, e.g. an unsupported vLLM
    release; the message names the field."""

    MISSING_API: Final = "MissingAPI"
    """Sized=False: the plan spans nodes but the cluster serves no LeaderWorkerSet API; install LeaderWorkerSet."""

    COMPLIANT: Final = "Compliant"
    """PolicyCompliant=True: every selecting SizingPolicy allows the plan."""

    NOT_STARTED: Final = "NotStarted"
    """Progressing=False: there is no workload and the spec cannot be sized, so nothing rolls out."""

    ROLLING_OUT: Final = "RollingOut"
    """Progressing=True: replicas are being created or updated, or are not ready yet."""

    COMPLETE: Final = "Complete"
    """Progressing=False: every desired replica runs the current spec and is ready."""

    UNSCHEDULABLE: Final = "Unschedulable"
    """Progressing=True, Ready=False while not available, and Degraded=True once a pod has waited past the progress
    deadline: a pod cannot be scheduled; the message quotes the scheduler."""

    CHILD_CONFLICT: Final = "ChildConflict"
    """Progressing=False, Degraded=True, Ready=False and a Warning event: a child's name is taken by an object this
    LLMDeployment does not control; nothing is applied until that object is renamed or deleted."""

    FAILED_CREATE: Final = "FailedCreate"
    """Progressing=False, Degraded=True, Ready=False while not available: the API server refuses the workload's
    pods (a Pod Security Standard, a quota, an admission webhook); the message is the server's."""

    MINIMUM_REPLICAS_AVAILABLE: Final = "MinimumReplicasAvailable"
    """Available=True: every desired replica is ready."""

    WAITING: Final = "Waiting"
    """Available=False, Ready=False: fewer replicas are ready than desired (starting, loading weights)."""

    SCALED_TO_ZERO: Final = "ScaledToZero"
    """Available=False: zero replicas are desired and there is no workload."""

    AS_EXPECTED: Final = "AsExpected"
    """Degraded=False: nothing needs a person (also while a pod waits for a node, within the progress deadline: the
    message then quotes the scheduler)."""

    SIZING_FAILED: Final = "SizingFailed"
    """Degraded=True: the spec can no longer be sized and the replicas of the earlier plan keep serving unchanged
    (Sized says why)."""

    POLICY_VIOLATION: Final = "PolicyViolation"
    """Degraded=True (earlier replicas keep serving, without scale-up), Ready=False and a Warning event: a
    SizingPolicy forbids the plan; PolicyCompliant names the violation."""

    APPLY_FAILED: Final = "ApplyFailed"
    """Degraded=True, Ready=False and a Warning event: the API server refused a child (an immutable field, an
    invalid value); the message is the server's."""

    NOT_SIZED: Final = "NotSized"
    """Ready=False: there is no plan for the current spec (Sized says why)."""

    READY: Final = "Ready"
    """Ready=True: sized, policy-compliant, applied, and every desired replica ready."""

    VALID: Final = "Valid"
    """Accepted=True: the SizingPolicy is in force."""

    INVALID_POLICY: Final = "InvalidPolicy"
    """Accepted=False: parts of the SizingPolicy are unusable (e.g. an unknown GPU product); the message lists every
    problem."""

    PRIMARY_POOL_FULL: Final = "PrimaryPoolFull"
    """Overflowing=True: replicas of the primary pool found no room (the scheduler's Insufficient reason, cordoned
    nodes, or a declared pool at its node limit) for longer than spec.placement.overflowAfterSeconds, and that many
    run on the overflow pool until the primary's replicas have been Ready for spec.placement.returnAfterSeconds."""

    OVERFLOW_NOT_NEEDED: Final = "NotNeeded"
    """Overflowing=False: every replica has room on the primary pool; the message names the overflow pool, or why
    there would be none."""

    WITHIN_GRACE_PERIOD: Final = "WithinGracePeriod"
    """Overflowing=False: replicas wait for room on the primary pool, for less than
    spec.placement.overflowAfterSeconds so far."""

    OVERFLOW_NOT_ALLOWED: Final = "OverflowNotAllowed"
    """Overflowing=False: replicas have no room on the primary pool and stay Pending, because spec.placement.overflow
    is Never (the default with one allowed product), a SizingPolicy forbids it (allowed.overflow: false), or no
    other allowed pool can hold a replica of the same kind; the message says which."""

    OVERFLOWED: Final = "Overflowed"
    """Normal event: replicas moved to the overflow pool; the message gives the pools and the counts."""

    RETURNED: Final = "Returned"
    """Normal event: replicas are back on the primary pool and the overflow pool's shrank or went."""

    CREATED: Final = "Created"
    """Normal event: a child (Deployment, LeaderWorkerSet, Service, PodDisruptionBudget) was created."""

    UPDATED: Final = "Updated"
    """Normal event: a child was updated to a changed plan or spec."""

    RESTORED: Final = "Restored"
    """Normal event: a field rightsizer sets on a child was edited by hand and is put back."""

    DELETED: Final = "Deleted"
    """Normal event: a child no longer needed (a Deployment replaced by a LeaderWorkerSet, or back) was deleted."""

    SCALED_UP: Final = "ScaledUp"
    """Normal event: the autoscaler raised the replicas; the message gives the counts and the decision's reason."""

    SCALED_DOWN: Final = "ScaledDown"
    """Normal event: the autoscaler lowered the replicas; the message gives the counts and the decision's reason."""

    SCALE_RECOMMENDED: Final = "ScaleRecommended"
    """Normal event in Recommend mode (spec.autoscaling.mode): the recommended replicas changed; nothing is scaled."""

    RESIZE_RECOMMENDED: Final = "ResizeRecommended"
    """Normal event: the plan the deployment's measured speed calls for (status.recommendation) differs from the
    plan in force; the message lists what would change and why it is not applied yet, if it is not."""

    RECOMMENDATION_APPLIED: Final = "RecommendationApplied"
    """Normal event (spec.autoscaling.applyRecommendations): the plan is re-sized with the measured speed; the
    message lists what changes (changed engine arguments restart the pods)."""

    WITHIN_INTERVAL: Final = "WithinInterval"
    """PredictionAccurate=True: observed latencies are within the performance model's interval at the observed
    load."""

    OUTSIDE_INTERVAL: Final = "OutsideInterval"
    """PredictionAccurate=False: a latency has been outside the interval for a sustained window; the message says
    which and by how much."""

    NO_EVIDENCE: Final = "NoEvidence"
    """PredictionAccurate=Unknown: no metrics window has carried enough requests yet."""

    METRICS_UNAVAILABLE: Final = "MetricsUnavailable"
    """Warning event, once until metrics return: the autoscaler could not read vLLM's latency metrics and made no
    decision."""
