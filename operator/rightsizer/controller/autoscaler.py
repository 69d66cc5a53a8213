"""The SLO autoscaler's live path: one pass over every LLMDeployment with autoscaling on.

Per deployment and pass (every RIGHTSIZER_AUTOSCALE_INTERVAL_SECONDS, started by controller.handlers like the resync):

1. gate: spec.autoscaling.enabled, an SLO target, replicas.max > replicas.min, a plan in status, and the policy
   verdict the reconciler reaches (a spec that violates policy is neither planned nor scaled);
2. observe: the metrics source's window (Prometheus or the pods' /metrics), and the replica counts: `current` is
   spec.replicas.desired (else status.replicas), `starting` is current minus the workloads' ready replicas (the
   primary's and the overflow pool's) — those still count as capacity on the way;
3. targets: spec.slo, max-num-seqs, and the performance model's capacity of one replica within the SLO for the
   lengths observed in the window (rightsizer.perf.in_force); while replicas overflow onto the next pool, each
   pool's replicas (their pods' rightsizer.dev/pool label) count at that pool's own plan's capacity
   (rightsizer.scaling.capacity);
4. decide (rightsizer.scaling.decision.decide, pure) within spec.replicas and the policies' bounds
   (policy.replica_bounds, then policy.bound_recommendation, exactly as the reconciler bounds replicas);
5. act: a changed count is written to spec.replicas.desired through the scale subresource — the reconciler turns it
   into the workload's replicas, and HPA or KEDA could write the same field instead — with an Event; status.autoscaling
   is written only when the decision, its reason or its targets change, or, for the observed latencies alone, at most
   every RIGHTSIZER_AUTOSCALE_STATUS_REFRESH_SECONDS. With nothing to report, a pass writes nothing.

The scaler state (recent recommendations) lives in memory. After a restart it starts from "the current count was
just recommended", so a restarted (or newly elected) operator waits a full scale-down window before scaling down.
status.autoscaling belongs to this module; the reconciler never writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from rightsizer.adapters.k8s import TemporaryApiError
from rightsizer.adapters.kube_api import KubeApi
from rightsizer.adapters.metrics_source import MetricsSource, MetricsUnavailableError, PrometheusSource, ScrapeSource
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api import constants as c
from rightsizer.api.conditions import ConditionType, Reason
from rightsizer.api.v1alpha1.common import Condition
from rightsizer.api.v1alpha1.llmdeployment import (
    AutoscalingMode,
    AutoscalingStatus,
    LLMDeployment,
    LLMDeploymentSpec,
    RecommendationStatus,
)
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.controller import metrics, series
from rightsizer.controller.reconcile import Event, Observed, Reconciler, now_rfc3339
from rightsizer.errors import RightsizerError
from rightsizer.kube.placement import count_on_pool, overflow_target
from rightsizer.kube.startup import lead_time_seconds
from rightsizer.kube.status import set_condition
from rightsizer.perf import Replica
from rightsizer.perf.in_force import replica_of
from rightsizer.policy import bound_recommendation, charge_of, namespace_usage, overflow_of, replica_bounds
from rightsizer.policy.assessment import Assessment
from rightsizer.scaling.calibration import SUSTAIN_S, Calibration, observe
from rightsizer.scaling.capacity import PoolCapacity, PoolShare, pool_capacity
from rightsizer.scaling.decision import Decision, ScalerState, Targets, decide
from rightsizer.scaling.performance import (
    accuracy_condition,
    calibration_from,
    condition_changed,
    error_ratios,
    performance_status,
)
from rightsizer.scaling.recommendation import Evidence, applied_correction, corrected_plan, recommend
from rightsizer.scaling.status import (
    WORKLOAD_KINDS,
    Counts,
    autoscaling_active,
    behavior_of,
    expected_p95,
    needs_write,
    next_status,
    observation_of,
    previous_status,
    replica_counts,
    status_wire,
    targets_of,
    window_capacity_rps,
)
from rightsizer.scaling.window import WindowStats

log = logging.getLogger(__name__)
JSON = Mapping[str, Any]


# --- the pass -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resizing:
    """What re-sizing at the measured speed needs: the spec as written, the cluster, and the plan in force."""

    spec: LLMDeploymentSpec
    observed: Observed
    plan: Plan


@dataclass(frozen=True)
class LastWrite:
    """This process's last status write for one deployment. The body a pass reads comes from the watch and may not
    show that write yet; within a refresh period it is the truth (this module owns status.autoscaling, status.
    performance and PredictionAccurate), so a stale body costs no second write."""

    at: float  # clock time of the write
    autoscaling: JSON | None  # status.autoscaling as written
    condition: JSON | None  # the PredictionAccurate condition as written
    performance: bool  # status.performance written
    recommendation: JSON | None = None  # status.recommendation as written

    @staticmethod
    def after(last: LastWrite | None, patch: Mapping[str, Any], now: float) -> LastWrite:
        """The record once `patch` is written: what it holds, and the rest as the last write left it."""
        accuracy = [x for x in patch.get("conditions") or [] if x.get("type") == ConditionType.PREDICTION_ACCURATE]
        return LastWrite(
            at=now,
            autoscaling=patch.get("autoscaling", last.autoscaling if last else None),
            condition=accuracy[0] if accuracy else (last.condition if last else None),
            performance="performance" in patch or (last is not None and last.performance),
            recommendation=patch.get("recommendation", last.recommendation if last else None),
        )


class Autoscaler:
    def __init__(
        self,
        reconciler: Reconciler,
        source: MetricsSource,
        *,
        status_refresh_seconds: float,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = now_rfc3339,
        concurrency: int = 16,
        accuracy_sustain_seconds: float = SUSTAIN_S,
    ) -> None:
        self.reconciler = reconciler
        self.concurrency = concurrency
        self.kube: KubeApi = reconciler.kube
        self.source = source
        self.status_refresh_seconds = status_refresh_seconds
        self.window_seconds = window_seconds
        self.clock = clock
        self.wall = wall
        self.states: dict[tuple[str, str], ScalerState] = {}
        self.last_writes: dict[tuple[str, str], LastWrite] = {}
        self.unavailable: set[tuple[str, str]] = set()
        self._replicas: dict[str, Replica | None] = {}
        self.calibrations: dict[tuple[str, str], Calibration] = {}  # see scaling.calibration
        self.accuracy_sustain_seconds = accuracy_sustain_seconds

    async def aclose(self) -> None:
        await self.source.aclose()

    def forget(self, key: tuple[str, str]) -> None:
        self.states.pop(key, None)
        self.last_writes.pop(key, None)
        self.unavailable.discard(key)
        self.calibrations.pop(key, None)
        series.forget_window(*key)
        for metric in ("ttft", "itl"):
            with contextlib.suppress(KeyError):
                metrics.PREDICTION_ERROR.remove(*key, metric)

    def reset(self) -> None:
        """Drop every deployment's state (this process stopped acting: a peer took over)."""
        for key in list(self.states):
            self.forget(key)

    async def run_once(self, deployments: Sequence[tuple[JSON, Observed]]) -> list[tuple[JSON, Event]]:
        """One pass; posts its Events (best effort) and returns them. Deployments are handled concurrently, at most
        `concurrency` at once, so one whose pods answer slowly (each scrape has its own deadline) does not hold up
        the others."""
        slots = asyncio.Semaphore(self.concurrency)

        async def one(body: JSON, observed: Observed) -> list[tuple[JSON, Event]]:
            meta = body.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            async with slots:
                try:
                    events = await self.scale_one(body, observed)
                except MetricsUnavailableError as err:
                    events = self._unavailable(key, str(err))
                except Exception:
                    log.exception("autoscaling of %s/%s failed; it is tried again next pass", *key)
                    return []
                for event in events:
                    await self._post(body, event)
            return [(body, e) for e in events]

        seen = {
            (str((b.get("metadata") or {}).get("namespace")), str((b.get("metadata") or {}).get("name")))
            for b, _ in deployments
        }
        results = await asyncio.gather(*(one(body, observed) for body, observed in deployments))
        for key in [k for k in self.states if k not in seen]:
            self.forget(key)
        return [posted for each in results for posted in each]

    async def _post(self, body: JSON, event: Event) -> None:
        try:
            await asyncio.to_thread(
                self.kube.post_event,
                body,
                type_=event.type,
                reason=event.reason,
                message=event.message,
                now=self.wall(),
            )
        except TemporaryApiError as err:
            meta = body.get("metadata") or {}
            log.warning("event %s on %s/%s not posted: %s", event.reason, meta.get("namespace"), meta.get("name"), err)

    def _unavailable(self, key: tuple[str, str], why: str) -> list[Event]:
        log.warning("autoscaling of %s/%s skipped: %s", *key, why)
        if key in self.unavailable:
            return []
        self.unavailable.add(key)
        return [Event("Warning", Reason.METRICS_UNAVAILABLE, f"no scaling decision: {why}")]

    async def scale_one(self, body: JSON, observed: Observed) -> list[Event]:
        meta = body.get("metadata") or {}
        namespace, name = str(meta["namespace"]), str(meta["name"])
        key = (namespace, name)
        status = body.get("status") or {}
        try:
            user_spec = LLMDeployment.model_validate(dict(body)).spec
        except ValidationError:
            return []
        if meta.get("deletionTimestamp") or not autoscaling_active(user_spec) or not status.get("plan"):
            self.forget(key)
            return []
        try:
            assessment = await asyncio.to_thread(
                self.reconciler.assess,
                namespace,
                name,
                user_spec,
                observed,
                correction=applied_correction(user_spec, status),
            )
        except RightsizerError as err:
            log.debug("autoscaling of %s/%s waits for a plan: %s", namespace, name, err.one_line())
            return []
        plan, spec = assessment.plan, assessment.spec
        if plan is None or not assessment.decision.allowed:
            return []
        workloads = [o for (kind, _), o in observed.children.items() if kind in WORKLOAD_KINDS]
        counts = replica_counts(user_spec, status, workloads)
        if counts is None:
            return []
        stats = await self.source.window(namespace, name, observed.pods, observed.nodes, spec.serving.engine.version)
        if stats.pods == 0 or stats.request_rate is None:
            return []  # nothing reports yet, or the samples span too little of the window: no basis for a decision
        self.unavailable.discard(key)
        now = self.clock()
        model = await asyncio.to_thread(self._model, namespace, spec, plan)
        calibration = self.calibrations.get(key) or calibration_from(status)  # continues after a restart
        if model is not None:
            calibration = await asyncio.to_thread(
                lambda: observe(calibration, stats, model, now, window_s=self.window_seconds)
            )
            self.calibrations[key] = calibration
            for metric, ratio in error_ratios(calibration).items():
                metrics.PREDICTION_ERROR.labels(namespace, name, metric).set(ratio)
        corrected = calibration.corrected(model) if model is not None else None
        capacity = await asyncio.to_thread(window_capacity_rps, spec, corrected, stats)
        pools = await asyncio.to_thread(
            self._pools,
            name,
            assessment,
            calibration=calibration,
            stats=stats,
            pods=observed.pods,
            primary_rps=capacity,
        )
        neighbours = [charge_of(LLMDeployment.model_validate(dict(b))) for b in observed.neighbours]
        placement = LLMDeployment.model_validate(dict(body)).status
        overflowing = overflow_of(
            placement.placement if placement else None, [r.entry for r in assessment.ranked], counts.current
        )
        usage = namespace_usage(neighbours, excluding=name)
        bounds = replica_bounds(spec, plan, assessment.effective, usage, overflowing)
        state = self.states.get(key) or ScalerState(recommendations=((now, counts.current),))  # see module doc
        predicted = expected_p95(spec, stats, corrected, counts.ready)
        obs = observation_of(stats, now, predicted)
        targets = targets_of(spec, plan, pools.next_rps, pools.in_force)
        decision = decide(
            obs,
            targets,
            behavior_of(
                spec,
                bounds,
                self.window_seconds,
                lead_time_seconds(placement.startup if placement else None, plan.pool),
            ),
            current=counts.current,
            starting=counts.starting,
            state=state,
        )
        self.states[key] = decision.state
        self._publish_window(key, stats, predicted=predicted, targets=targets, pools=pools, in_force=counts.current)
        log.debug(
            "%s/%s: %s, %d ready of %d, %.0f finished (%s + %s tokens), capacity %s req/s (in force %s, one more "
            "on %s) -> %d (%s)",
            namespace,
            name,
            obs,
            counts.ready,
            counts.current,
            stats.finished,
            stats.mean_prompt_tokens,
            stats.mean_generation_tokens,
            capacity,
            pools.total_rps,
            pools.next_pool,
            decision.replicas,
            decision.reason,
        )
        replicas = bound_recommendation(decision.replicas, counts.current, bounds)
        raw, previous = previous_status(body)
        events, decision, history_from = await self._apply(
            user_spec.autoscaling.mode, key, counts=counts, replicas=replicas, decision=decision, previous=previous
        )
        new = status_wire(
            next_status(
                previous,
                obs=obs,
                targets=targets,
                decision=decision,
                replicas=replicas,
                current=history_from,
                now=self.wall(),
            )
        )
        events += await self._write_status(
            key,
            body,
            raw,
            new,
            model=model,
            calibration=calibration,
            spec=spec,
            stats=stats,
            capacity=capacity,
            now=now,
            sizing=Resizing(user_spec, observed, plan),
        )
        return events

    async def _write_status(
        self,
        key: tuple[str, str],
        body: JSON,
        raw: JSON | None,
        new: JSON,
        *,
        model: Replica | None,
        calibration: Calibration,
        spec: LLMDeploymentSpec,
        stats: WindowStats,
        capacity: float | None,
        now: float,
        sizing: Resizing,
    ) -> list[Event]:
        """One status patch for status.autoscaling, status.performance, PredictionAccurate and status.recommendation,
        or none: only what changed, or everything when the refresh is due. Returns the recommendation's Events."""
        namespace, name = key
        last = self.last_writes.get(key)
        refresh_due = last is None or now - last.at >= self.status_refresh_seconds
        recent = None if refresh_due else last
        if recent is not None and recent.autoscaling is not None:
            raw = recent.autoscaling
        patch: dict[str, Any] = {}
        if needs_write(raw, new, refresh_due=refresh_due):
            changed = sorted(k for k, v in new.items() if (raw or {}).get(k) != v)
            log.debug("%s/%s: status.autoscaling written (%s)", namespace, name, ", ".join(changed))
            patch["autoscaling"] = new
        if model is not None:
            patch.update(
                await self._performance(
                    recent,
                    body,
                    calibration,
                    model=model,
                    spec=spec,
                    stats=stats,
                    capacity=capacity,
                    now=now,
                    riding=bool(patch),
                    refresh_due=refresh_due,
                )
            )
        events: list[Event] = []
        shown = (body.get("status") or {}).get("recommendation") or (recent.recommendation if recent else None)
        if calibration.samples and ("performance" in patch or not shown):
            recommendation, events = await self._recommend(key, sizing, calibration, shown)
            if recommendation != shown:
                patch["recommendation"] = recommendation
        if patch:
            log.debug("%s/%s: status written (%s)", namespace, name, ", ".join(sorted(patch)))
            await asyncio.to_thread(self.kube.patch_status, c.API_VERSION, c.LLMD_KIND, namespace, name, patch)
            self.last_writes[key] = LastWrite.after(last, patch, now)
        return events

    async def _recommend(
        self, key: tuple[str, str], sizing: Resizing, calibration: Calibration, shown: JSON | None
    ) -> tuple[JSON, list[Event]]:
        """status.recommendation (scaling.recommendation): the spec re-sized at the measured speed against the plan
        in force; applied (written to .applied, which the reconciler sizes with) when the spec asks and it is due."""
        namespace, name = key
        evidence = Evidence.of(calibration, sizing.plan)
        corrected: Plan | None
        error: str | None
        try:
            assessment = await asyncio.to_thread(
                self.reconciler.assess, namespace, name, sizing.spec, sizing.observed, correction=evidence.correction
            )
        except RightsizerError as err:
            corrected, error = None, err.one_line()
        else:
            corrected, error = corrected_plan(assessment)
        try:
            previous = RecommendationStatus.model_validate(shown) if shown else None
        except ValidationError:
            previous = None
        verdict = recommend(
            sizing.spec,
            in_force=sizing.plan,
            corrected=corrected,
            error=error,
            evidence=evidence,
            previous=previous,
            wall=self.wall(),
        )
        if verdict.apply:
            metrics.RESIZES.inc()
            log.info("%s/%s: re-sized with the measured speed: %s", namespace, name, "; ".join(verdict.status.changes))
        events = [Event("Normal", *verdict.event)] if verdict.event else []
        return verdict.status.to_wire(), events

    async def _apply(
        self,
        mode: AutoscalingMode,
        key: tuple[str, str],
        *,
        counts: Counts,
        replicas: int,
        decision: Decision,
        previous: AutoscalingStatus | None,
    ) -> tuple[list[Event], Decision, int]:
        """Act: write a changed count through /scale. Recommend: record it only. Returns the Events, the decision
        as recorded, and the count a history entry starts from."""
        namespace, name = key
        if mode is AutoscalingMode.RECOMMEND:
            # Observe only, never /scale. History and Event follow changes of the recommendation: the count in
            # force does not move, so every pass would differ from it.
            last = previous.desired_replicas if previous and previous.desired_replicas is not None else counts.current
            events = []
            if replicas != last:
                metrics.SCALING_RECOMMENDATIONS.labels("up" if replicas > last else "down").inc()
                message = (
                    f"recommend {replicas} replicas ({counts.current} in force, not changed: spec.autoscaling.mode "
                    f"is Recommend): {decision.reason}"
                )
                events.append(Event("Normal", Reason.SCALE_RECOMMENDED, message))
            return events, replace(decision, reason=f"recommendation only: {decision.reason}"), last
        if replicas == counts.current:
            return [], decision, counts.current
        await asyncio.to_thread(self.kube.scale, c.API_VERSION, c.LLMD_KIND, namespace, name, replicas)
        up = replicas > counts.current
        metrics.SCALING_DECISIONS.labels("up" if up else "down").inc()
        series.count_scaling(namespace, name, "up" if up else "down", decision.reason)
        verb = Reason.SCALED_UP if up else Reason.SCALED_DOWN
        log.info("%s/%s: %d -> %d replicas: %s", namespace, name, counts.current, replicas, decision.reason)
        return (
            [Event("Normal", verb, f"{counts.current} → {replicas} replicas: {decision.reason}")],
            decision,
            counts.current,
        )

    async def _performance(
        self,
        recent: LastWrite | None,
        body: JSON,
        calibration: Calibration,
        *,
        model: Replica,
        spec: LLMDeploymentSpec,
        stats: WindowStats,
        capacity: float | None,
        now: float,
        riding: bool,
        refresh_due: bool,
    ) -> dict[str, Any]:
        """status.performance and the PredictionAccurate condition, when due: the condition changed (or is missing:
        the reconciler keeps conditions it does not own, but a write of its own may race this one), another part of
        status is written anyway (`riding`), there is none yet, or the refresh is due and the figures moved (a
        steady state writes nothing). Within a refresh period of the last write, what it wrote counts as written
        even if the body does not show it yet (`recent`: that write, None once the refresh is due)."""
        status = body.get("status") or {}
        conditions = list(status.get("conditions") or [])
        condition = accuracy_condition(
            calibration,
            now=now,
            wall=self.wall(),
            generation=(body.get("metadata") or {}).get("generation"),
            sustain_s=self.accuracy_sustain_seconds,
        )
        patch: dict[str, Any] = {}
        written = [recent.condition] if recent is not None and recent.condition is not None else None
        if condition_changed(conditions, condition) and (written is None or condition_changed(written, condition)):
            parsed = [Condition.model_validate(x) for x in conditions]
            patch["conditions"] = [x.to_wire() for x in set_condition(parsed, condition)]
        shown = status.get("performance") or (recent is not None and recent.performance)
        if patch or riding or refresh_due or not shown:
            model_capacity = await asyncio.to_thread(window_capacity_rps, spec, model, stats)
            wire = performance_status(calibration, capacity_rps=capacity, model_capacity_rps=model_capacity)
            performance = wire.model_dump(by_alias=True, mode="json")
            # as the API server stores it (a merge patch's nulls delete keys): to_wire() leaves them out
            if patch or riding or not shown or wire.to_wire() != status.get("performance"):
                patch["performance"] = performance
        return patch

    def _model(self, namespace: str, spec: LLMDeploymentSpec, plan: Plan) -> Replica | None:
        """The plan's replica as the model sees it (perf.in_force); None when the model cannot say (a GPU without
        performance figures)."""
        key = plan.model_dump_json() + spec.model.model_dump_json()
        if key not in self._replicas:
            if len(self._replicas) > 64:
                self._replicas.clear()
            try:
                facts = self.reconciler.resolve_model(namespace, spec).facts
                self._replicas[key] = replica_of(spec, facts, plan)
            except (ValueError, RightsizerError) as err:
                log.info("no capacity model for %s: %s; scaling on latency and queue only", plan.gpu_product, err)
                self._replicas[key] = None
        return self._replicas[key]

    def _pools(
        self,
        name: str,
        assessment: Assessment,
        *,
        calibration: Calibration,
        stats: WindowStats,
        pods: Sequence[JSON],
        primary_rps: float | None,
    ) -> PoolCapacity:
        """The replicas in force on the primary pool and, while overflowing, on the overflow pool (their pods'
        rightsizer.dev/pool label), each at its pool's own plan's capacity; and where one more replica goes
        (scaling.capacity). The calibration's factors, learnt from this deployment's own metrics, correct each
        pool's model alike; only the primary pool's replica counts as measured (Calibration.transferred)."""
        spec, plan = assessment.spec, assessment.plan
        if plan is None:
            return PoolCapacity((), primary_rps, None)
        on_primary = count_on_pool(pods, plan.pool)
        primary = PoolShare(plan.pool, on_primary.in_force, primary_rps)
        target = overflow_target(name, spec, assessment.ranked, assessment.effective.overflow_forbidden)
        if target.pool is None or target.ranked is None or target.ranked.plan is None:
            return pool_capacity(primary, None, primary_full=on_primary.no_room > 0, overflow_allowed=False)
        on_overflow = count_on_pool(pods, target.pool)
        allowed = target.blocked is None
        rps = None
        if on_overflow.in_force or (on_primary.no_room and allowed):
            model = self._model(assessment.effective.namespace, spec, target.ranked.plan)
            rps = window_capacity_rps(spec, calibration.transferred(model), stats) if model is not None else None
        overflow = PoolShare(target.pool, on_overflow.in_force, rps)
        return pool_capacity(primary, overflow, primary_full=on_primary.no_room > 0, overflow_allowed=allowed)

    @staticmethod
    def _publish_window(
        key: tuple[str, str],
        stats: WindowStats,
        *,
        predicted: tuple[float, float] | None,
        targets: Targets,
        pools: PoolCapacity,
        in_force: int,
    ) -> None:
        """The window as a dashboard draws it (controller.series): observed p95s beside the SLO and what the
        calibrated model predicts at the same load; capacity over the replicas in force (each at its pool's, or
        all at one replica's when they share one pool)."""
        view = series.WindowView(
            ttft={"target": targets.ttft_p95_s, "observed": stats.ttft_p95_s, "predicted": predicted and predicted[0]},
            itl={"target": targets.itl_p95_s, "observed": stats.itl_p95_s, "predicted": predicted and predicted[1]},
            request_rate=stats.request_rate,
            capacity_rps=pools.serving_rps(in_force),
            waiting=stats.waiting,
            kv_usage=stats.kv_usage,
        )
        series.publish_window(*key, view)


def autoscaler_from(reconciler: Reconciler, config: OperatorSettings) -> Autoscaler:
    """The autoscaler the operator runs: Prometheus when RIGHTSIZER_PROMETHEUS_URL is set, else the embedded scrape."""
    source: MetricsSource
    if config.prometheus_url:
        source = PrometheusSource(
            config.prometheus_url,
            config.autoscale_window_seconds,
            config.scrape_timeout_seconds,
            namespace_label=config.prometheus_namespace_label,
            pod_label=config.prometheus_pod_label,
        )
    else:
        source = ScrapeSource(
            config.autoscale_window_seconds,
            config.vllm_metrics_port,
            config.scrape_timeout_seconds,
            concurrency=config.scrape_concurrency,
            targets_dir=config.scrape_targets_dir,
        )
    return Autoscaler(
        reconciler,
        source,
        status_refresh_seconds=config.autoscale_status_refresh_seconds,
        window_seconds=config.autoscale_window_seconds,
        accuracy_sustain_seconds=config.prediction_sustain_seconds,
    )
