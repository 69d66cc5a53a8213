"""Platform sizing policy (SizingPolicy): pure functions the admission webhook, the reconciler, the autoscaler and
`rightsizer plan --policy` share. No I/O: callers pass what they read from the API server or its cache.

Typical flow for one LLMDeployment in namespace `ns` with labels `labels` (see docs/policy.md):

    if not needs_evaluation(operation, obj, old_obj): allow        # webhook: only spec changes are judged
    effective = combine(ns, selecting(all_policies, ns, labels))
    defaulted = apply_defaults(spec, effective, facts)            # mutating webhook: json_patch(obj, applied)
    outcome = plan_within_policy(SizingRequest(defaulted.spec, facts, pools), effective, name)
    decision = outcome.decision        # = evaluate(spec, plan, effective); reconcile calls evaluate on status.plan
    quota = admit(AdmissionRequest(...), effective, charges, reservations, now)   # validating webhook
    bounds = replica_bounds(spec, plan, effective, used)           # autoscaler: bound_recommendation(...)
"""

from rightsizer.policy.admission import needs_evaluation
from rightsizer.policy.bounds import ReplicaBounds, bound_recommendation, replica_bounds
from rightsizer.policy.decision import Decision, Violation, ViolationKind
from rightsizer.policy.defaults import Defaulted, Defaulting, apply_defaults, json_patch
from rightsizer.policy.effective import EffectiveDefaults, EffectivePolicy, Sourced, combine, product_key
from rightsizer.policy.evaluate import engine_image, evaluate, plan_violations
from rightsizer.policy.explain import explain_dict, explain_lines
from rightsizer.policy.images import image_allowed, normalise_image, normalise_prefix
from rightsizer.policy.placement import (
    PolicyPlan,
    declared_pools,
    plan_within_policy,
    restrict_pools,
    with_declared,
)
from rightsizer.policy.quota import (
    RESERVATION_TTL,
    AdmissionRequest,
    GpuCharge,
    Overflow,
    QuotaAdmission,
    QuotaCheck,
    Reservation,
    admit,
    backed,
    charge_of,
    check_quota,
    live_reservations,
    namespace_usage,
    overflow_of,
    placed_gpus,
    replicas_fitting,
    starting_replicas,
)
from rightsizer.policy.selection import namespace_labels, selecting, selector_matches
from rightsizer.policy.validity import policy_problems

__all__ = [
    "RESERVATION_TTL",
    "AdmissionRequest",
    "Decision",
    "Defaulted",
    "Defaulting",
    "EffectiveDefaults",
    "EffectivePolicy",
    "GpuCharge",
    "Overflow",
    "PolicyPlan",
    "QuotaAdmission",
    "QuotaCheck",
    "ReplicaBounds",
    "Reservation",
    "Sourced",
    "Violation",
    "ViolationKind",
    "admit",
    "apply_defaults",
    "backed",
    "bound_recommendation",
    "charge_of",
    "check_quota",
    "combine",
    "declared_pools",
    "engine_image",
    "evaluate",
    "explain_dict",
    "explain_lines",
    "image_allowed",
    "json_patch",
    "live_reservations",
    "namespace_labels",
    "namespace_usage",
    "needs_evaluation",
    "normalise_image",
    "normalise_prefix",
    "overflow_of",
    "placed_gpus",
    "plan_violations",
    "plan_within_policy",
    "policy_problems",
    "product_key",
    "replica_bounds",
    "replicas_fitting",
    "restrict_pools",
    "selecting",
    "selector_matches",
    "starting_replicas",
    "with_declared",
]
