"""status.recommendation: re-sizing at the measured speed (scaling.recommendation), the sizing hook that runs
replicas at that speed, the autoscaler that records and applies it, and the reconciler that sizes with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.llmdeployment import AppliedCorrection, LLMDeployment, LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.controller.autoscaler import Autoscaler
from rightsizer.controller.reconcile import Observed, Reconciler
from rightsizer.perf import Traffic, predict
from rightsizer.perf.in_force import replica_of
from rightsizer.scaling.calibration import restored
from rightsizer.scaling.recommendation import (
    MIN_CONFIDENCE,
    Evidence,
    State,
    Verdict,
    applied_correction,
    correction_of,
    plan_changes,
    recommend,
    worth_a_restart,
)
from rightsizer.scaling.window import WindowStats
from rightsizer.sizing.performance import Correction, Layout
from tests.unit.fake_kube import FakeKube
from tests.unit.helpers import facts_of
from tests.unit.test_autoscaler import FakeSource, deployment, observed

JSON = dict[str, Any]
WALL = "2026-01-01T12:00:00Z"
SURE = Evidence(correction_of(1.4, 1.4), confidence=0.9, samples=20)


def itl_bound_deployment() -> JSON:
    """The 70B FP8 example with only an ITL target, 35 ms, that caps --max-num-seqs once replicas run 40 % slower
    than the model (at the model's speed the KV cache caps it first), and its plan in status."""
    body = deployment({"min": 1, "max": 6})
    body["spec"]["slo"] = {"itlP95Ms": 35}
    body["spec"]["workload"] = {"inputTokens": 2048, "outputTokens": 512, "requestRate": 2.0}
    user_spec = LLMDeployment.model_validate(body).spec
    planned = Reconciler(FakeKube(), OperatorSettings(allow_hub=False)).assess(
        "ns", "llama-3-1-70b-fp8", user_spec, observed(ready=1)
    )
    assert planned.plan is not None
    body["status"]["plan"] = planned.plan.to_wire()
    return body


def in_force_and_slower() -> tuple[LLMDeploymentSpec, Plan, Plan]:
    """itl_bound_deployment's plan at the model's speed, and at 40 % slower (the same spec re-sized)."""
    user_spec = LLMDeployment.model_validate(itl_bound_deployment()).spec
    reconciler = Reconciler(FakeKube(), OperatorSettings(allow_hub=False))
    plans = [
        reconciler.assess("ns", "llama-3-1-70b-fp8", user_spec, observed(ready=1), correction=c).plan
        for c in (None, correction_of(1.4, 1.4))
    ]
    assert plans[0] is not None and plans[1] is not None
    return user_spec, plans[0], plans[1]


def with_autoscaling(spec: LLMDeploymentSpec, **fields: Any) -> LLMDeploymentSpec:
    return spec.model_copy(update={"autoscaling": spec.autoscaling.model_copy(update=fields)})


# --- the sizing hook -----------------------------------------------------------------------------------------------


def test_a_slower_replica_is_sized_to_hold_the_itl_target_at_its_own_speed() -> None:
    spec, model, slower = in_force_and_slower()
    assert slower.max_num_seqs < model.max_num_seqs and worth_a_restart(model, slower)
    assert slower.performance is not None and spec.slo.itl_p95_ms is not None
    assert slower.performance.meets_slo
    # What the slower plan promises it promises at the slower speed: the plan in force, run 40 % slower, misses.
    truth = replica_of(spec, facts_of(spec.model.name), model).scaled(1.4, 1.4)
    full = predict(
        truth, Traffic(spec.workload.input_tokens, spec.workload.output_tokens, concurrency=model.max_num_seqs)
    )
    assert full.itl_p95_high * 1e3 > spec.slo.itl_p95_ms


def test_a_unit_correction_sizes_exactly_as_the_model() -> None:
    body = deployment({"min": 1, "max": 6})
    user_spec = LLMDeployment.model_validate(body).spec
    reconciler = Reconciler(FakeKube(), OperatorSettings(allow_hub=False))
    plain = reconciler.assess("ns", "x", user_spec, observed(ready=1)).plan
    unit = reconciler.assess("ns", "x", user_spec, observed(ready=1), correction=correction_of(1.0, 1.0)).plan
    assert plain is not None and unit is not None
    assert unit.to_wire() == plain.to_wire()


def test_a_measured_speed_narrows_the_edges_only_on_the_layout_it_was_measured_on() -> None:
    """Once the factors count as measured, the layout they were measured on is re-sized with the within-deployment
    slow edges (here the ITL cap on --max-num-seqs loosens); another layout keeps the cross-source edges, and so
    does a slack that would make the measured edge wider than the model's."""
    spec, _, slower = in_force_and_slower()
    reconciler = Reconciler(FakeKube(), OperatorSettings(allow_hub=False))
    here = Layout.of(slower)
    elsewhere = Layout(here.gpu_product, 2 * here.tensor_parallel_size, here.pipeline_parallel_size, False)

    def plan(correction: Correction) -> Plan:
        planned = reconciler.assess("ns", "x", spec, observed(ready=1), correction=correction).plan
        assert planned is not None and planned.performance is not None
        return planned

    cross = plan(correction_of(1.4, 1.4))
    assert cross.to_wire() == slower.to_wire()
    measured = plan(correction_of(1.4, 1.4, 1.0, here))
    assert measured.max_num_seqs > cross.max_num_seqs
    assert measured.performance is not None and measured.performance.meets_slo
    assert "measured speed's uncertainty" in measured.performance.interval_basis
    assert plan(correction_of(1.4, 1.4, 1.0, elsewhere)).to_wire() == cross.to_wire()
    doubtful = plan(correction_of(1.4, 1.4, 3.0, here))
    assert doubtful.max_num_seqs == cross.max_num_seqs


def test_evidence_names_its_slack_and_layout_only_once_the_speed_counts_as_measured() -> None:
    _, model, _ = in_force_and_slower()
    early = Evidence.of(restored(1.4, 1.4, samples=2, confidence=0.9), model)
    assert early.correction.slack is None and early.correction.measured_on is None
    known = Evidence.of(restored(1.4, 1.4, samples=20, confidence=0.9), model)
    assert known.correction.slack is not None and 1.0 <= known.correction.slack <= 1.15
    assert known.correction.measured_on == Layout.of(model)


def test_an_applied_measured_speed_round_trips_through_status() -> None:
    spec, model, slower = in_force_and_slower()
    asked = with_autoscaling(spec, apply_recommendations=True)
    evidence = Evidence(correction_of(1.4, 1.4, 1.05, Layout.of(model)), confidence=0.95, samples=20)
    verdict = recommend(
        asked, in_force=model, corrected=slower, error=None, evidence=evidence, previous=None, wall=WALL
    )
    assert verdict.apply and verdict.status.slack == 1.05
    status = {"recommendation": verdict.status.to_wire()}
    assert status["recommendation"]["applied"]["measuredOn"]["tensorParallelSize"] == model.tensor_parallel_size
    assert applied_correction(asked, status) == evidence.correction
    # A status written before the slack was recorded sizes with the cross-source edges.
    del status["recommendation"]["applied"]["slack"], status["recommendation"]["applied"]["measuredOn"]
    assert applied_correction(asked, status) == correction_of(1.4, 1.4)


@pytest.mark.parametrize("slack", [0.5, float("nan"), float("inf")])
def test_an_impossible_recorded_slack_falls_back_instead_of_failing_every_reconcile(slack: float) -> None:
    """status.recommendation.applied is read back on every reconcile; a slack under 1 or not finite (a hand edit, a
    bad write) reached Replica.measured, which raises ValueError, so every pass failed. The record is now refused as
    a whole, as one with unreadable factors is, and the spec is sized at the model's speed."""
    spec, model, _ = in_force_and_slower()
    asked = with_autoscaling(spec, apply_recommendations=True)
    layout = Layout.of(model)
    applied = AppliedCorrection(
        prefill_factor=1.4, decode_factor=1.4, slack=1.05, measured_on=None, model=spec.model.name, time=WALL
    ).to_wire()
    applied["slack"] = slack
    applied["measuredOn"] = {
        "gpuProduct": layout.gpu_product,
        "tensorParallelSize": layout.tensor_parallel_size,
        "pipelineParallelSize": layout.pipeline_parallel_size,
    }
    assert applied_correction(asked, {"recommendation": {"applied": applied}}) is None


# --- the pure decision -----------------------------------------------------------------------------------------------


def test_nothing_to_change_is_up_to_date() -> None:
    spec, model, _ = in_force_and_slower()
    verdict = recommend(spec, in_force=model, corrected=model, error=None, evidence=SURE, previous=None, wall=WALL)
    assert verdict.status.state == State.UP_TO_DATE and not verdict.apply and verdict.status.changes == []


def test_a_change_is_recorded_but_not_applied_unless_the_spec_asks() -> None:
    spec, model, slower = in_force_and_slower()
    verdict = recommend(spec, in_force=model, corrected=slower, error=None, evidence=SURE, previous=None, wall=WALL)
    assert verdict.status.state == State.RECOMMENDED and not verdict.apply
    assert "applyRecommendations is false" in verdict.status.message
    assert verdict.status.changes == plan_changes(model, slower)
    assert verdict.status.applied is None
    assert verdict.event is not None and verdict.event[0] == "ResizeRecommended"
    # The same recommendation standing (its figures moving) is not announced again.
    again = recommend(
        spec, in_force=model, corrected=slower, error=None, evidence=SURE, previous=verdict.status, wall=WALL
    )
    assert again.status.state == State.RECOMMENDED and again.event is None


@pytest.mark.parametrize(("confidence", "samples"), [(MIN_CONFIDENCE - 0.01, 20), (0.95, 9)])
def test_weak_evidence_waits(confidence: float, samples: int) -> None:
    spec, model, slower = in_force_and_slower()
    weak = Evidence(SURE.correction, confidence, samples)
    verdict = recommend(
        with_autoscaling(spec, apply_recommendations=True),
        in_force=model,
        corrected=slower,
        error=None,
        evidence=weak,
        previous=None,
        wall=WALL,
    )
    assert verdict.status.state == State.RECOMMENDED and not verdict.apply
    assert "waiting for confidence" in verdict.status.message


def test_applied_when_asked_sure_and_due_then_rate_limited() -> None:
    spec, model, slower = in_force_and_slower()
    asked = with_autoscaling(spec, apply_recommendations=True, apply_interval_seconds=3600)
    first = recommend(asked, in_force=model, corrected=slower, error=None, evidence=SURE, previous=None, wall=WALL)
    assert first.apply and first.status.state == State.APPLIED
    assert first.event == ("RecommendationApplied", first.status.message)
    assert first.status.applied == AppliedCorrection(
        prefill_factor=1.4, decode_factor=1.4, model=spec.model.name, time=WALL
    )

    # Later the fleet looks as fast as the model again: back to the model's plan, at most once per interval.
    def back_at(now: datetime) -> Verdict:
        return recommend(
            asked,
            in_force=slower,
            corrected=model,
            error=None,
            evidence=Evidence(correction_of(1.0, 1.0), 0.9, 40),
            previous=first.status,
            wall=now.isoformat().replace("+00:00", "Z"),
        )

    again = back_at(datetime(2026, 1, 1, 12, 30, tzinfo=UTC))  # half an hour on: held back, the applied kept
    assert not again.apply and again.status.state == State.RECOMMENDED
    assert "30 min ago" in again.status.message and "applyIntervalSeconds" in again.status.message
    assert again.status.applied == first.status.applied
    assert back_at(datetime(2026, 1, 1, 13, 1, tzinfo=UTC)).apply  # after the interval it goes through


def test_no_corrected_plan_keeps_the_plan_in_force_and_says_why() -> None:
    spec, model, _ = in_force_and_slower()
    verdict = recommend(
        with_autoscaling(spec, apply_recommendations=True),
        in_force=model,
        corrected=None,
        error="spec.slo.itlP95Ms: 50 ms is missed on every allowed GPU",
        evidence=SURE,
        previous=None,
        wall=WALL,
    )
    assert verdict.status.state == State.UNPLANNABLE and not verdict.apply
    assert "spec.slo.itlP95Ms" in verdict.status.message and "the plan in force stays" in verdict.status.message


def test_a_small_batch_change_alone_restarts_nothing() -> None:
    _, model, _ = in_force_and_slower()
    one_more = model.model_copy(update={"max_num_seqs": model.max_num_seqs + 1, "replicas": model.replicas + 2})
    assert plan_changes(model, one_more) and not worth_a_restart(model, one_more)
    halved = model.model_copy(update={"max_num_seqs": model.max_num_seqs // 2})
    assert worth_a_restart(model, halved)


def test_the_reconciler_sizes_with_the_applied_correction_only_for_its_model_and_while_asked() -> None:
    spec, _, _ = in_force_and_slower()
    applied = {"recommendation": {"applied": {"prefillFactor": 1.4, "decodeFactor": 1.4, "model": spec.model.name}}}
    applied["recommendation"]["applied"]["time"] = WALL
    asked = with_autoscaling(spec, apply_recommendations=True)
    assert applied_correction(asked, applied) == Correction(1.4, 1.4)
    assert applied_correction(spec, applied) is None  # not asked
    other = asked.model_copy(update={"model": asked.model.model_copy(update={"name": "another/model"})})
    assert applied_correction(other, applied) is None  # measured on another model
    assert applied_correction(asked, {"recommendation": {"applied": {"prefillFactor": "x"}}}) is None


# --- end to end without a cluster: the autoscaler learns, applies; the reconciler re-sizes ---------------------------


def test_a_slower_fleet_is_re_sized_once_the_factors_are_known() -> None:
    body = itl_bound_deployment()
    body["spec"]["autoscaling"] = {"applyRecommendations": True}
    user_spec = LLMDeployment.model_validate(body).spec
    model = replica_of(user_spec, facts_of(user_spec.model.name), Plan.model_validate(body["status"]["plan"]))
    truth = model.scaled(1.4, 1.4)
    rate = 0.5
    p = predict(truth, Traffic(1155, 211, request_rate=rate))
    stats = WindowStats(
        1, rate, p.ttft.p95, p.itl.p95, 0.0, p.running, 0.3, 1155.0, 211.0, 30.0, p.ttft.mean, p.itl.mean
    )
    now = [0.0]
    kube = FakeKube()
    reconciler = Reconciler(kube, OperatorSettings(allow_hub=False))
    autoscaler = Autoscaler(
        reconciler,
        FakeSource(stats),
        status_refresh_seconds=0.0,
        window_seconds=15.0,
        clock=lambda: now[0],
        wall=lambda: WALL,
    )
    reasons: list[str] = []
    states: list[str] = []
    for i in range(16):
        now[0] = 15.0 * i
        reasons += [e.reason for _, e in asyncio.run(autoscaler.run_once([(body, observed(ready=1))]))]
        for write in (w for w in kube.writes if w.verb == "status"):
            body["status"].update(write.body)
        kube.writes.clear()
        states.append(body["status"]["recommendation"]["state"])
    print(states, reasons)
    assert "RecommendationApplied" in reasons and reasons.count("RecommendationApplied") == 1
    recommendation = body["status"]["recommendation"]
    assert recommendation["applied"]["model"] == user_spec.model.name
    assert recommendation["applied"]["decodeFactor"] == pytest.approx(1.4, rel=0.10)
    # The reconciler sizes with it: the Deployment it applies carries the corrected plan's engine arguments.
    corrected = reconciler.assess(
        "ns", "x", user_spec, observed(ready=1), correction=applied_correction(user_spec, body["status"])
    ).plan
    assert corrected is not None
    reconciler.reconcile(body, Observed(nodes=observed(ready=1).nodes))  # a cluster without its children yet
    deployment_args = next(
        w.body["spec"]["template"]["spec"]["containers"][0]["args"]
        for w in kube.writes
        if w.verb == "apply" and w.kind == "Deployment"
    )
    in_force = Plan.model_validate(body["status"]["plan"])
    assert corrected.max_num_seqs < in_force.max_num_seqs
    flag = deployment_args.index("--max-num-seqs")
    assert deployment_args[flag + 1] == str(corrected.max_num_seqs)
    status = next(w.body for w in kube.writes if w.verb == "status")
    assert status["plan"]["maxNumSeqs"] == corrected.max_num_seqs
