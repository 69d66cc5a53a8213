"""One reconcile of one LLMDeployment: parse -> resolve the model -> judge against pools and policy -> build ->
write what differs -> status.

Level-based and idempotent: it reads only the object, what kopf's indexes observed (children, pods, nodes,
policies, the namespace, the neighbours for quota) and the clock, and it writes nothing when nothing differs. A
spec that cannot be satisfied, or that a policy forbids, becomes a status condition; the running children are then
left exactly as they are (never half-applied).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from rightsizer.adapters.hub import HubClient
from rightsizer.adapters.k8s import MissingApiError, RejectedError
from rightsizer.adapters.kube_api import KubeApi
from rightsizer.adapters.modelsource import ResolvedModel, resolve
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api import constants as c
from rightsizer.api.conditions import ConditionType, Reason
from rightsizer.api.v1alpha1.common import Condition
from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec, PlacementStatus, PoolReplicas
from rightsizer.api.v1alpha1.plan import Plan, PoolPlan
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller import metrics, series
from rightsizer.errors import ModelConfigError, RightsizerError, SizingError, SloUnreachableError
from rightsizer.kube.actions import Apply, ChildKey, Conflict, Delete, key_of, missing, owned_by, plan_actions
from rightsizer.kube.builders.children import desired_children
from rightsizer.kube.builders.context import BuildContext, BuildOptions
from rightsizer.kube.cost import cost_status
from rightsizer.kube.discovery import discover
from rightsizer.kube.placement import (
    OverflowTarget,
    PlacementInputs,
    at_node_limit,
    decide,
    moved_message,
    overflow_target,
    placement_status,
    workload_replicas,
)
from rightsizer.kube.startup import startup_status
from rightsizer.kube.status import StatusInputs, observe, status_fields
from rightsizer.policy import (
    GpuCharge,
    bound_recommendation,
    charge_of,
    declared_pools,
    namespace_usage,
    overflow_of,
    replica_bounds,
)
from rightsizer.policy.assessment import Assessment, assess, effective_policy
from rightsizer.policy.effective import EffectivePolicy
from rightsizer.policy.evaluate import unreadable_token_secret
from rightsizer.policy.quota import Overflow
from rightsizer.scaling.recommendation import applied_correction
from rightsizer.sizing.budget import time_budget
from rightsizer.sizing.explain import plan_summary
from rightsizer.sizing.performance import Correction, SloPerformance
from rightsizer.sizing.pools import GpuPool, merge

log = logging.getLogger(__name__)
JSON = Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Observed:
    """What kopf's indexes know about the cluster, for one LLMDeployment."""

    children: dict[ChildKey, JSON] = field(default_factory=dict)
    pods: list[JSON] = field(default_factory=list)
    nodes: list[JSON] = field(default_factory=list)
    policies: list[SizingPolicy] = field(default_factory=list)
    namespace_labels: dict[str, str] = field(default_factory=dict)
    neighbours: list[JSON] = field(default_factory=list)  # the namespace's other LLMDeployments


@dataclass(frozen=True)
class Outcome:
    """What this reconcile decided: the plan in force, why it could not go further, the replica count."""

    plan: Plan | None
    sizing_error: tuple[str, str] | None
    replicas: int
    policy_violation: tuple[str, str] | None = None
    policy_note: str | None = None
    apply_error: str | None = None
    child_conflict: str | None = None
    pools: tuple[PoolPlan, ...] | None = None  # None: keep what status has
    placed: Placed | None = None


@dataclass(frozen=True)
class Placed:
    """Where this reconcile put the replicas (kube/placement.py): for status."""

    overflow_workload: str | None
    covered_pods: frozenset[str]
    overflowing: tuple[bool, str, str]
    placement: PlacementStatus


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class AssessmentCache:
    """Assessments are pure functions of (spec, model config, pools, effective policy): keep the recent ones.

    Keys are SHA-256 digests of those inputs, so a key costs 32 bytes however large the spec; an entry is charged
    the size of its inputs (an inline config of 1 MB is held again inside the assessment's spec), and the cache
    keeps at most `max_entries` entries and `max_bytes` of them, the least recently used dropped first. An entry
    larger than an eighth of the budget is not kept: a tenant cannot flush everyone's entries with one spec."""

    def __init__(self, max_entries: int = 512, max_bytes: int = 32 * 1024 * 1024) -> None:
        self._entries: OrderedDict[str, tuple[Assessment, int]] = OrderedDict()
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_compute(self, material: str, compute: Callable[[], Assessment]) -> Assessment:
        key = hashlib.sha256(material.encode()).hexdigest()
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key][0]
        value = compute()
        cost = len(material)
        if cost > self.max_bytes // 8:
            return value
        self._entries[key] = (value, cost)
        self.bytes += cost
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped
        return value


ASSESSMENT_BUDGET_SECONDS = 5.0  # a real assessment takes 0.05-0.3 s (405B on seven pools: 0.2 s)


def _deadline(seconds: float) -> Callable[[], None]:
    end = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() > end:
            raise SizingError(
                "spec",
                f"sizing took longer than its {seconds:g} s budget",
                "narrow the search (spec.gpu.products, a pinned spec.gpu.tensorParallelSize), or report it: "
                "a real model sizes in well under a second",
            )

    return check


def _pool_key(pools: Sequence[GpuPool]) -> list[Any]:
    return [
        (p.name, p.product, p.gpus_per_node, p.max_nodes, p.price_per_gpu_hour, sorted(p.node_selector.items()))
        for p in pools
    ]


def desired_replicas(spec: LLMDeploymentSpec, planned: Plan | None) -> int:
    """spec.replicas.desired (set by /scale or the autoscaler) within min..max; else what the workload needs."""
    replicas = spec.replicas
    wanted = replicas.desired if replicas.desired is not None else (planned.replicas if planned else replicas.min)
    return max(replicas.min, min(wanted, replicas.upper))


# The Event reason of each kind of write kube.actions.plan_actions returns.
_APPLIED: Final[Mapping[str, str]] = {"created": Reason.CREATED, "updated": Reason.UPDATED, "restored": Reason.RESTORED}


def _error_reason(err: RightsizerError) -> str:
    if isinstance(err, ModelConfigError):
        return Reason.MODEL_CONFIG_UNAVAILABLE
    if isinstance(err, SloUnreachableError):
        return Reason.SLO_UNREACHABLE
    if isinstance(err, SizingError):
        return Reason.NO_FEASIBLE_PLAN
    return Reason.INVALID_SPEC


class Reconciler:
    def __init__(
        self,
        kube: KubeApi,
        settings: OperatorSettings,
        hub: HubClient | None = None,
        clock: Callable[[], str] = now_rfc3339,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.hub = hub
        self.clock = clock
        self.assessments = AssessmentCache()
        self.declared_pools: list[GpuPool] = []
        # The plan last announced per object: the cached body can lag our own status write by a watch event, and
        # one decision should make one event.
        self._announced: dict[str, str] = {}
        self._charges: dict[str, tuple[str, GpuCharge]] = {}  # uid -> (resourceVersion, its charge), see charges()
        self.options = BuildOptions(
            image_repository=settings.image_repository,
            startup_base_seconds=settings.startup_base_seconds,
            startup_seconds_per_weight_gib=settings.startup_seconds_per_weight_gib,
            shm_size=settings.shm_size,
            run_as_user=settings.vllm_run_as_user,
            scratch_size=settings.vllm_scratch_size,
        )

    def forget(self, uid: str) -> None:
        """The LLMDeployment is gone: drop what this process kept for it."""
        self._announced.pop(uid, None)
        self._charges.pop(uid, None)

    def charges(self, bodies: Sequence[JSON]) -> list[GpuCharge]:
        """The GPUs each LLMDeployment holds (policy.charge_of), parsed once per resourceVersion of each."""
        out = []
        for body in bodies:
            meta = body.get("metadata", {})
            uid, version = str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))
            known = self._charges.get(uid)
            if known is None or known[0] != version or not uid or not version:
                known = (version, charge_of(LLMDeployment.model_validate(dict(body))))
                if uid and version:
                    self._charges[uid] = known
            out.append(known[1])
        return out

    def pools(self, nodes: Sequence[JSON]) -> list[GpuPool]:
        """Pools known cluster-wide: discovered from GPU nodes, plus those the operator configuration declares."""
        return merge(discover(nodes, self.settings.pool_label_keys), self.declared_pools)

    def resolve_model(
        self, namespace: str, spec: LLMDeploymentSpec, *, reads: bool = True, effective: EffectivePolicy | None = None
    ) -> ResolvedModel:
        """The model's config as `namespace` may read it: its own ConfigMap, the Hub with its own token (never the
        operator's). `reads=False` (admission) reads nothing of the namespace and asks the Hub without a token:
        an AdmissionReview can be forged by anyone who reaches the webhook, for any namespace, so it must not make
        the operator read a ConfigMap or Secret; such models are sized once the object exists. A token Secret that
        `effective` does not allow (allowed.hfTokenSecrets) is not read either: SizingError names the field."""

        def read_config_map(name: str, key: str) -> str:
            if not reads:
                raise ModelConfigError(
                    "spec.model.configMapRef",
                    f"ConfigMap {name} is read once the LLMDeployment exists, not at admission",
                    "nothing to do: the Sized and PolicyCompliant conditions will report the plan",
                )
            return self.kube.read_config_map_key(namespace, name, key)

        def read_token() -> str | None:
            ref = spec.serving.hf_token_secret_ref
            if ref is None or not reads:
                return None
            refused = unreadable_token_secret(spec, effective) if effective is not None else None
            if refused is not None:
                raise refused
            return self.kube.read_secret_key(namespace, ref.name, ref.key)

        return resolve(
            spec.model, read_config_map=read_config_map, hub=self.hub, read_hub_token=read_token, hub_scope=namespace
        )

    def assess(
        self,
        namespace: str,
        name: str,
        spec: LLMDeploymentSpec,
        observed: Observed,
        *,
        reads: bool = True,
        correction: Correction | None = None,
    ) -> Assessment:
        """The plan the policies allow for this spec; raises RightsizerError naming the field at fault (a sizing
        that outruns ASSESSMENT_BUDGET_SECONDS included). `reads`: see resolve_model. `correction`: size at a
        measured speed instead of the model's (scaling.recommendation)."""
        effective = effective_policy(namespace, observed.policies, observed.namespace_labels)
        resolved = self.resolve_model(namespace, spec, reads=reads, effective=effective)
        pools = self.pools(observed.nodes)
        material = json.dumps(
            [spec.to_wire(), resolved.config, _pool_key(pools), repr(effective), repr(correction)],
            sort_keys=True,
            default=str,
        )
        performance = SloPerformance(correction=correction) if correction is not None else None

        def compute() -> Assessment:
            with time_budget(_deadline(ASSESSMENT_BUDGET_SECONDS)):
                return assess(
                    namespace=namespace,
                    name=name,
                    spec=spec,
                    facts=resolved.facts,
                    known_pools=pools,
                    effective=effective,
                    image_repository=self.settings.image_repository,
                    performance=performance,
                )

        return self.assessments.get_or_compute(material, compute)

    def reconcile(self, body: JSON, observed: Observed) -> list[Event]:
        meta = body.get("metadata", {})
        name, namespace = str(meta["name"]), str(meta["namespace"])
        previous = body.get("status") or {}
        kept_plan = Plan.model_validate(previous["plan"]) if previous.get("plan") else None
        kept_replicas = int(previous.get("replicas") or 0)
        try:
            spec = LLMDeployment.model_validate(dict(body)).spec
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            error = (Reason.INVALID_SPEC, f"{where}: {first['msg']}")
            return self._write_status(body, observed, Outcome(kept_plan, error, kept_replicas), [])

        try:
            assessment = self.assess(namespace, name, spec, observed, correction=applied_correction(spec, previous))
        except RightsizerError as err:
            error = (_error_reason(err), err.one_line())
            metrics.SIZING_FAILURES.labels(error[0]).inc()
            repeated = _condition_message(previous, ConditionType.SIZED) == error[1]
            return self._write_status(
                body, observed, Outcome(kept_plan, error, kept_replicas), [] if repeated else [Event("Warning", *error)]
            )

        decision, planned = assessment.decision, assessment.plan
        if planned is None or not decision.allowed:
            violation = (decision.reason, decision.message())
            repeated = _condition_message(previous, ConditionType.POLICY_COMPLIANT) == violation[1]
            warned = [] if repeated else [Event("Warning", Reason.POLICY_VIOLATION, violation[1])]
            outcome = Outcome(kept_plan or planned, None, kept_replicas, policy_violation=violation)
            return self._write_status(body, observed, outcome, warned)

        events: list[Event] = []
        summary = plan_summary(planned)
        uid = str(meta.get("uid"))
        if previous.get("plan") != planned.to_wire() and self._announced.get(uid) != summary:
            self._announced[uid] = summary
            metrics.PLANS.labels(planned.gpu_product).inc()
            events.append(Event("Normal", Reason.PLANNED, summary))
        placed_before = PlacementStatus.model_validate(previous["placement"]) if previous.get("placement") else None
        overflowing = overflow_of(placed_before, [r.entry for r in assessment.ranked], kept_replicas)
        replicas, note = self._replicas(name, assessment, planned, observed, kept_replicas, overflowing=overflowing)
        pool = next(p for p in assessment.pools if p.name == planned.pool)
        ctx = BuildContext(name, namespace, str(meta["uid"]), assessment.spec, planned, pool, replicas, self.options)
        overflow, placed, moved = self._place(ctx, assessment, observed)
        if moved is not None:
            events.append(moved)
        pools = tuple(r.entry for r in assessment.ranked)
        warnings = "; ".join((*decision.warnings, *([note] if note else [])))
        try:
            applied, conflict = self._apply(desired_children(ctx, overflow), observed, ctx.uid)
            events += applied
        except MissingApiError as err:
            error = (Reason.MISSING_API, f"{err}; install it to serve plans that span nodes")
            return self._write_status(body, observed, Outcome(planned, error, replicas, pools=pools), events)
        except RejectedError as err:
            events.append(Event("Warning", Reason.APPLY_FAILED, str(err)))
            return self._write_status(
                body, observed, Outcome(planned, None, replicas, apply_error=str(err), pools=pools), events
            )
        if conflict is not None:
            if _condition_message(previous, ConditionType.PROGRESSING) != conflict:
                events.append(Event("Warning", Reason.CHILD_CONFLICT, conflict))
            return self._write_status(
                body, observed, Outcome(planned, None, replicas, child_conflict=conflict, pools=pools), events
            )
        return self._write_status(
            body,
            observed,
            Outcome(planned, None, replicas, policy_note=warnings or None, pools=pools, placed=placed),
            events,
        )

    def _place(
        self, ctx: BuildContext, assessment: Assessment, observed: Observed
    ) -> tuple[BuildContext | None, Placed, Event | None]:
        """How many replicas the overflow pool runs (kube/placement.py), from the pods' conditions and the live
        overflow workload: the overflow's build context (None: no overflow workload), what status shows, and the
        Event when replicas moved."""
        spec, planned = assessment.spec, ctx.plan
        target = overflow_target(ctx.name, spec, assessment.ranked, assessment.effective.overflow_forbidden)
        live_overflow = _live_workload(observed, ctx.uid, target)
        current, overflow_ready = workload_replicas(live_overflow)
        declared = {p.name: p for p in (*self.declared_pools, *declared_pools(assessment.effective))}
        limit = declared[planned.pool].max_nodes if planned.pool in declared else None
        placement = decide(
            PlacementInputs(
                desired=ctx.replicas,
                primary=planned.pool,
                target=target,
                pods=observed.pods,
                current_overflow=current,
                now=datetime.fromisoformat(self.clock().replace("Z", "+00:00")),
                overflow_after_seconds=spec.placement.overflow_after_seconds,
                return_after_seconds=spec.placement.return_after_seconds,
                primary_at_node_limit=at_node_limit(ctx.pool.discovered_nodes, limit),
            )
        )
        overflow, extra = None, None
        if target.ranked is not None and target.ranked.plan is not None and placement.overflow_replicas:
            overflow = replace(
                ctx,
                plan=target.ranked.plan,
                pool=target.ranked.pool,
                replicas=placement.overflow_replicas,
                workload_name=target.workload,
                selects_pool=True,
            )
            extra = PoolReplicas(
                pool=target.ranked.pool.name,
                role="overflow",
                workload=str(target.workload),
                replicas=placement.overflow_replicas,
                ready_replicas=overflow_ready,
            )
        _, primary_ready = workload_replicas(observed.children.get((_kind(planned), ctx.name)))
        primary = PoolReplicas(
            pool=planned.pool, role="primary", workload=ctx.name, replicas=ctx.replicas, ready_replicas=primary_ready
        )
        placed = Placed(
            target.workload if overflow is not None else None,
            placement.covered_pods,
            placement.condition,
            placement_status(primary, extra),
        )
        message = moved_message(placement, current, planned.pool, target.pool)
        if message is None:
            return overflow, placed, None
        reason = Reason.OVERFLOWED if placement.overflow_replicas > current else Reason.RETURNED
        return overflow, placed, Event("Normal", reason, message)

    def _replicas(
        self,
        name: str,
        assessment: Assessment,
        planned: Plan,
        observed: Observed,
        current: int,
        *,
        overflowing: Overflow | None,
    ) -> tuple[int, str | None]:
        """Desired replicas within spec.replicas and the policies' bounds (limits and the namespace quota, the
        replicas on the overflow pool counted at its product); running replicas are never removed by a tightened
        policy."""
        wanted = desired_replicas(assessment.spec, planned)
        # Only a namespace quota counts the neighbours' GPUs: without one, none is parsed (a namespace of 1,000
        # LLMDeployments would parse 999 per reconcile).
        neighbours = self.charges(observed.neighbours) if assessment.effective.quotas else []
        used = namespace_usage(neighbours, excluding=name)
        bounds = replica_bounds(assessment.spec, planned, assessment.effective, used, overflowing)
        bounded = bound_recommendation(wanted, current, bounds)
        note = f"replicas held at {bounded} of {wanted}: {'; '.join(bounds.reasons)}" if bounded < wanted else None
        return bounded, note

    def _apply(self, desired: Sequence[JSON], observed: Observed, owner_uid: str) -> tuple[list[Event], str | None]:
        """Write what differs among the children this LLMDeployment controls: (events, None); or, when a desired
        name is taken by an object it does not control, write nothing: ([], the conflict's message)."""
        live = dict(observed.children)
        for obj in missing(desired, live):
            # The watches select rightsizer's labels: a user's object of the same name is only seen by asking.
            meta = obj["metadata"]
            existing = self.kube.read_object(str(obj["apiVersion"]), str(obj["kind"]), meta["namespace"], meta["name"])
            if existing is not None:
                live[key_of(obj)] = existing
        actions = plan_actions(desired, live, owner_uid)
        conflicts = [a for a in actions if isinstance(a, Conflict)]
        if conflicts:
            return [], "; ".join(conflict.message() for conflict in conflicts)
        events = []
        for action in actions:
            if isinstance(action, Apply):
                applied = self.kube.apply(action.obj)
                observed.children[key_of(action.obj)] = applied
                events.append(
                    Event(
                        "Normal",
                        _APPLIED[action.why],
                        f"{action.obj['kind']} {action.obj['metadata']['name']} {action.why}",
                    )
                )
            elif isinstance(action, Delete):
                self.kube.delete(action.api_version, action.kind, action.namespace, action.name, uid=action.uid)
                observed.children.pop((action.kind, action.name), None)
                events.append(Event("Normal", Reason.DELETED, f"{action.kind} {action.name} no longer needed"))
        return events, None

    def _write_status(self, body: JSON, observed: Observed, outcome: Outcome, events: list[Event]) -> list[Event]:
        meta = body["metadata"]
        uid = str(meta.get("uid"))
        placed = outcome.placed
        workloads = {
            name: obj
            for (kind, name), obj in observed.children.items()
            if kind in ("Deployment", "LeaderWorkerSet") and owned_by(obj, uid)
        }
        # The primary carries the instance's name; without a placement this pass, any workload it owns reports.
        workload = workloads.get(str(meta["name"])) or next(iter(workloads.values()), None)
        overflow = workloads.get(placed.overflow_workload) if placed and placed.overflow_workload else None
        pods = [p for p in observed.pods if not placed or p["metadata"].get("name") not in placed.covered_pods]
        previous = body.get("status") or {}
        pools = (
            list(outcome.pools)
            if outcome.pools is not None
            else [PoolPlan.model_validate(x) for x in previous.get("pools") or []]
        )
        placement = (
            placed.placement
            if placed is not None
            else (PlacementStatus.model_validate(previous["placement"]) if previous.get("placement") else None)
        )
        selector = ",".join(
            f"{k}={v}"
            for k, v in sorted(
                {
                    c.LABEL_NAME: c.APP_NAME,
                    c.LABEL_INSTANCE: str(meta["name"]),
                    c.LABEL_MANAGED_BY: c.MANAGED_BY,
                }.items()
            )
        )
        now = self.clock()
        observation = observe(workload, pods, outcome.replicas, overflow)
        cluster_pools = self.pools(observed.nodes)
        cost = cost_status(
            observed.pods,
            cluster_pools,
            default_price=self.settings.default_price_per_gpu_hour,
            previous=previous.get("cost"),
            performance=previous.get("performance"),
            ready_replicas=observation.ready,
            now=now,
        )
        series.publish_cost(str(meta["namespace"]), str(meta["name"]), cost)
        inputs = StatusInputs(
            generation=int(meta.get("generation", 0)),
            now=now,
            plan=outcome.plan,
            sizing_error=outcome.sizing_error,
            policy_violation=outcome.policy_violation,
            observation=observation,
            replicas=outcome.replicas,
            selector=selector,
            previous_conditions=[Condition.model_validate(x) for x in previous.get("conditions") or []],
            policy_note=outcome.policy_note,
            apply_error=outcome.apply_error,
            child_conflict=outcome.child_conflict,
            progress_deadline_seconds=self.settings.progress_deadline_seconds,
            cost=cost,
            startup=startup_status(observed.pods, previous.get("startup"), {p.name for p in cluster_pools}),
            pools=pools,
            placement=placement,
            overflowing=placed.overflowing if placed is not None else None,
        )
        status = status_fields(inputs)
        series.publish_status(str(meta["namespace"]), str(meta["name"]), status)
        # Other writers own other status fields (status.autoscaling): compare and patch only ours.
        if any(previous.get(k) != v for k, v in status.items()) or ("plan" in previous and "plan" not in status):
            changed = sorted(k for k, v in status.items() if previous.get(k) != v)
            log.debug(
                "%s/%s: status written by the reconciler (%s)", meta["namespace"], meta["name"], ", ".join(changed)
            )
            self.kube.patch_status(
                c.API_VERSION,
                c.LLMD_KIND,
                str(meta["namespace"]),
                str(meta["name"]),
                {**status, "plan": status.get("plan")},
            )
        return events


def _condition_message(status: Mapping[str, Any], kind: str) -> str | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("message"))
    return None


def _kind(p: Plan) -> str:
    return "LeaderWorkerSet" if p.nodes_per_replica > 1 else "Deployment"


def _live_workload(observed: Observed, owner_uid: str, target: OverflowTarget) -> JSON | None:
    """The live overflow workload this LLMDeployment controls, if any."""
    if target.workload is None or target.ranked is None or target.ranked.plan is None:
        return None
    live = observed.children.get((_kind(target.ranked.plan), target.workload))
    return live if live is not None and owned_by(live, owner_uid) else None
