"""status.recommendation: the plan a deployment's measured speed calls for, and whether to apply it. Pure.

Self-calibration (scaling.calibration) learns how much slower or faster than the model this deployment's replicas
run: a prefill and a decode factor. The autoscaler already counts each replica's capacity with them; what it cannot
change by adding replicas is the engine itself: `--max-num-seqs` is capped so that the inter-token latency target
holds at a full batch (sizing.search), and a replica 40 % slower than the model breaks that target at the batch the
model allowed, however many replicas run. So the autoscaler re-sizes the spec with the corrected model
(sizing.performance.SloPerformance with the factors) and compares the result with the plan in force.

What would change is recorded (status.recommendation, an Event when it changes). It is applied only when the spec
asks for it (spec.autoscaling.applyRecommendations), because new engine arguments restart every pod, and then only
when it is worth a restart and safe:

* the factors rest on enough evidence: confidence at least MIN_CONFIDENCE over at least MIN_SAMPLES windows;
* the change is material: a different pool, parallelism or token budget, or a --max-num-seqs that moves by more
  than SEQS_CHANGE of itself (and more than MIN_SEQS_CHANGE sequences); the replica need alone is the
  autoscaler's to follow and restarts nothing;
* the last application is at least spec.autoscaling.applyIntervalSeconds old (a rate limit: each one restarts pods);
* the corrected model finds a plan the policies allow (otherwise the plan in force stays and the reason is shown).

Applying is writing the factors to status.recommendation.applied; the reconciler sizes with them from then on
(`applied_correction`), so the plan stays a function of the spec and recorded state (level-based). Factors are
rounded to two decimals: finer steps would be noise, and equal inputs keep the sizing cache warm.

Once the factors count as measured (Calibration.slack), the correction carries their slack and the plan in force's
layout, and is recorded with them: re-sizing then prices that layout's candidates with a measured speed's narrower
slow edges and every other layout with the model's own (sizing.performance.Correction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from rightsizer.api.conditions import Reason
from rightsizer.api.v1alpha1.llmdeployment import (
    AppliedCorrection,
    LLMDeploymentSpec,
    MeasuredLayout,
    RecommendationStatus,
)
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.policy.assessment import Assessment
from rightsizer.scaling.calibration import FACTOR_BOUNDS, Calibration
from rightsizer.sizing.explain import plan_summary
from rightsizer.sizing.performance import Correction, Layout

MIN_CONFIDENCE = 0.8  # the factors known to within ±20 %
MIN_SAMPLES = 10  # metrics windows behind the factors
SEQS_CHANGE = 0.10  # a --max-num-seqs change below this share of it is not worth a restart
MIN_SEQS_CHANGE = 2

JSON = Mapping[str, Any]


class State:
    UP_TO_DATE = "UpToDate"
    RECOMMENDED = "Recommended"
    APPLIED = "Applied"
    UNPLANNABLE = "Unplannable"


def correction_of(
    prefill: float, decode: float, slack: float | None = None, measured_on: Layout | None = None
) -> Correction:
    """A Correction with its factors within FACTOR_BOUNDS and rounded to two decimals (see the module doc)."""
    low, high = FACTOR_BOUNDS
    return Correction(round(min(high, max(low, prefill)), 2), round(min(high, max(low, decode)), 2), slack, measured_on)


def applied_correction(spec: LLMDeploymentSpec, status: JSON) -> Correction | None:
    """The correction the reconciler sizes with: status.recommendation.applied, while the spec asks for it and the
    factors were measured on the model it serves; None otherwise (the model's own speed)."""
    if not spec.autoscaling.apply_recommendations:
        return None
    raw = (status.get("recommendation") or {}).get("applied")
    if not raw:
        return None
    try:
        applied = AppliedCorrection.model_validate(raw)
    except ValidationError:
        return None
    if applied.model != spec.model.name:
        return None
    where = Layout.of(applied.measured_on) if applied.measured_on is not None else None
    return correction_of(applied.prefill_factor, applied.decode_factor, applied.slack, where)


def plan_changes(in_force: Plan, corrected: Plan) -> list[str]:
    """What re-sizing would change, one item per field, old → new."""
    pairs: list[tuple[str, object, object]] = [
        ("pool", in_force.pool, corrected.pool),
        ("GPUs per replica", in_force.gpus_per_replica, corrected.gpus_per_replica),
        ("--tensor-parallel-size", in_force.tensor_parallel_size, corrected.tensor_parallel_size),
        ("--pipeline-parallel-size", in_force.pipeline_parallel_size, corrected.pipeline_parallel_size),
        ("--enable-expert-parallel", in_force.expert_parallel, corrected.expert_parallel),
        ("--max-num-seqs", in_force.max_num_seqs, corrected.max_num_seqs),
        ("--max-num-batched-tokens", in_force.max_num_batched_tokens, corrected.max_num_batched_tokens),
        ("replicas for spec.workload", in_force.replicas, corrected.replicas),
    ]
    return [f"{what} {old} → {new}" for what, old, new in pairs if old != new]


def worth_a_restart(in_force: Plan, corrected: Plan) -> bool:
    """Whether the change touches the engine enough to restart pods for (see the module doc)."""
    shape = (
        in_force.pool != corrected.pool
        or in_force.tensor_parallel_size != corrected.tensor_parallel_size
        or in_force.pipeline_parallel_size != corrected.pipeline_parallel_size
        or in_force.expert_parallel != corrected.expert_parallel
        or in_force.max_num_batched_tokens != corrected.max_num_batched_tokens
    )
    moved = abs(corrected.max_num_seqs - in_force.max_num_seqs)
    return shape or moved > max(MIN_SEQS_CHANGE, SEQS_CHANGE * in_force.max_num_seqs)


@dataclass(frozen=True)
class Evidence:
    """The calibration the recommendation rests on."""

    correction: Correction
    confidence: float
    samples: int

    @staticmethod
    def of(calibration: Calibration, in_force: Plan) -> Evidence:
        """The calibration's factors, and once they count as measured (Calibration.slack) their slack and the
        layout of the plan in force, where the windows behind them were served."""
        slack = calibration.slack
        return Evidence(
            correction_of(
                calibration.prefill.factor,
                calibration.decode.factor,
                slack,
                Layout.of(in_force) if slack is not None else None,
            ),
            calibration.confidence,
            calibration.samples,
        )

    def __str__(self) -> str:
        return f"measured {self.correction} the model's time (confidence {self.confidence:.2f}, {self.samples} windows)"


def corrected_plan(assessment: Assessment) -> tuple[Plan | None, str | None]:
    """The plan an assessment at the measured speed gives, or why there is none the policies allow."""
    if assessment.plan is not None and assessment.decision.allowed:
        return assessment.plan, None
    return None, f"a SizingPolicy forbids the plan: {assessment.decision.message()}"


@dataclass(frozen=True)
class Verdict:
    status: RecommendationStatus
    apply: bool  # write status.recommendation.applied now (the reconciler then re-sizes)
    event: tuple[str, str] | None = None  # (reason, message) of the Normal Event worth posting, if any


def recommend(
    spec: LLMDeploymentSpec,
    *,
    in_force: Plan,
    corrected: Plan | None,
    error: str | None,
    evidence: Evidence,
    previous: RecommendationStatus | None,
    wall: str,
) -> Verdict:
    """The recommendation for `corrected` (the plan the corrected model chooses; None with `error` when it finds
    none) against the plan in force, whether to apply it now (`wall`: RFC 3339, the time it is decided at), and the
    Event it is worth: one when it is applied, and one when a recommendation that would change the plan appears (on
    a change of state only: the figures of a standing recommendation move with every window)."""
    applied = previous.applied if previous is not None and spec.autoscaling.apply_recommendations else None
    where = evidence.correction.measured_on

    def verdict(state: str, message: str, *, changes: list[str] | None = None, apply: bool = False) -> Verdict:
        record = (
            AppliedCorrection(
                prefill_factor=evidence.correction.prefill,
                decode_factor=evidence.correction.decode,
                slack=evidence.correction.slack,
                measured_on=MeasuredLayout.model_validate(asdict(where)) if where is not None else None,
                model=spec.model.name,
                time=wall,
            )
            if apply
            else applied
        )
        status = RecommendationStatus(
            prefill_factor=evidence.correction.prefill,
            decode_factor=evidence.correction.decode,
            confidence=round(evidence.confidence, 2),
            slack=evidence.correction.slack,
            summary=plan_summary(corrected) if corrected is not None else None,
            changes=changes or [],
            state=state,
            message=message,
            applied=record,
        )
        event = None
        if apply:
            event = (Reason.RECOMMENDATION_APPLIED, message)
        elif status.changes and (previous is None or previous.state != state):
            event = (Reason.RESIZE_RECOMMENDED, f"{'; '.join(status.changes)}: {message}")
        return Verdict(status, apply, event)

    if corrected is None:
        return verdict(State.UNPLANNABLE, f"{evidence}, and at that speed {error}; the plan in force stays")
    changes = plan_changes(in_force, corrected)
    if not changes:
        return verdict(State.UP_TO_DATE, f"{evidence}: the plan in force fits it")
    held = _held_back(
        spec, in_force=in_force, corrected=corrected, evidence=evidence, applied=applied, now=_parsed(wall)
    )
    if held is not None:
        return verdict(State.RECOMMENDED, f"{evidence}; not applied: {held}", changes=changes)
    return verdict(State.APPLIED, f"{evidence}; re-sized: {'; '.join(changes)}", changes=changes, apply=True)


def _held_back(
    spec: LLMDeploymentSpec,
    *,
    in_force: Plan,
    corrected: Plan,
    evidence: Evidence,
    applied: AppliedCorrection | None,
    now: datetime | None,
) -> str | None:
    """Why a recommendation that changes the plan is not applied now, or None to apply it."""
    if not worth_a_restart(in_force, corrected):
        return "the replica need is the autoscaler's to follow, and the engine change is too small to restart for"
    if not spec.autoscaling.apply_recommendations:
        return "spec.autoscaling.applyRecommendations is false (set it to re-size automatically)"
    if evidence.confidence < MIN_CONFIDENCE or evidence.samples < MIN_SAMPLES:
        return (
            f"waiting for confidence {MIN_CONFIDENCE:.2f} over {MIN_SAMPLES} windows "
            f"(now {evidence.confidence:.2f} over {evidence.samples})"
        )
    if applied is not None:
        since = _seconds_since(applied.time, now)
        interval = spec.autoscaling.apply_interval_seconds
        if since is not None and since < interval:
            return (
                f"the last re-size was {since / 60:.0f} min ago, and spec.autoscaling.applyIntervalSeconds allows one "
                f"per {interval / 60:.0f} min"
            )
    return None


def _parsed(rfc3339: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _seconds_since(rfc3339: str, now: datetime | None) -> float | None:
    then = _parsed(rfc3339)
    if then is None or now is None:
        return None
    return max(0.0, (now - then).total_seconds())
