"""The autoscaler's live path without a cluster: its pure pieces, and one pass with a fake API and metrics source."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from rightsizer.adapters.metrics_source import (
    MetricsUnavailableError,
    Recent,
    scrape_address,
    serving_pods,
    targets_from_file_sd,
)
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.llmdeployment import AutoscalingStatus, LLMDeployment, LLMDeploymentSpec
from rightsizer.controller.autoscaler import Autoscaler
from rightsizer.controller.reconcile import Observed, Reconciler
from rightsizer.perf.in_force import expected_length
from rightsizer.scaling.decision import Decision, Observation, Targets
from rightsizer.scaling.status import autoscaling_active, needs_write, next_status, replica_counts, status_wire
from rightsizer.scaling.window import WindowStats
from tests.unit.fake_kube import FakeKube
from tests.unit.helpers import REPO
from tests.unit.test_discovery import node

JSON = dict[str, Any]


def spec(**fields: Any) -> LLMDeploymentSpec:
    body = {"model": {"name": "m"}, "slo": {"ttftP95Ms": 500}, "replicas": {"min": 1, "max": 4}}
    return LLMDeploymentSpec.model_validate({**body, **fields})


@pytest.mark.parametrize(
    ("fields", "active"),
    [
        ({}, True),
        ({"slo": {"itlP95Ms": 30}}, True),
        ({"slo": {}}, False),  # nothing to hold
        ({"replicas": {"min": 2, "max": 2}}, False),  # no room
        ({"replicas": {"min": 2}}, False),  # max defaults to min
        ({"autoscaling": {"enabled": False}}, False),
    ],
)
def test_autoscaling_is_on_with_a_target_and_room(fields: JSON, active: bool) -> None:
    assert autoscaling_active(spec(**fields)) is active


@pytest.mark.parametrize(
    ("desired", "status", "ready", "expected"),
    [
        (None, {"replicas": 3}, 2, (3, 2, 1)),  # no desired yet: what the reconciler runs
        (5, {"replicas": 3}, 3, (5, 3, 2)),  # written, not applied yet: the 2 new ones are starting
        (2, {"replicas": 3}, 3, (2, 2, 0)),  # scaling down: more ready than wanted, none starting
        (None, {}, 0, None),  # never reconciled
    ],
)
def test_replica_counts(desired: int | None, status: JSON, ready: int, expected: tuple[int, int, int] | None) -> None:
    workload = {"status": {"readyReplicas": ready}}
    counts = replica_counts(spec(replicas={"min": 1, "max": 6, "desired": desired}), status, workload)
    assert (None if counts is None else (counts.current, counts.ready, counts.starting)) == expected


def status_after(
    replicas: int, current: int, reason: str, ttft: float, previous: AutoscalingStatus | None = None
) -> AutoscalingStatus:
    return next_status(
        previous,
        obs=Observation(time=0.0, request_rate=1.0, ttft_p95_s=ttft, waiting=2.0, running=8.0),
        targets=Targets(0.5, None, 2.0, 64),
        decision=Decision(replicas, replicas, reason),
        replicas=replicas,
        current=current,
        now="2026-01-01T00:00:00Z",
    )


def test_status_records_changes_in_the_history_and_keeps_the_last_ten() -> None:
    status = None
    for i in range(12):
        status = status_after(i + 2, i + 1, f"capacity: step {i}", 0.4, status)
    assert status is not None
    assert len(status.history) == 10
    assert (status.history[-1].from_replicas, status.history[-1].to_replicas) == (12, 13)
    assert status.last_scale_time == "2026-01-01T00:00:00Z"
    held = status_after(13, 13, "hold: no signal to change", 0.4, status)
    assert held.history == status.history
    wire = status_wire(held)
    assert wire["observedTtftP95Ms"] == 400.0 and wire["targetTtftP95Ms"] == 500.0
    assert wire["observedItlP95Ms"] is None  # present as null: a merge patch clears an old value


def test_status_writes_only_for_decisions_or_due_refreshes() -> None:
    base = status_wire(status_after(3, 3, "capacity: 2.31 req/s over 1.80 req/s per replica", 0.4))
    same_kind = status_wire(status_after(3, 3, "capacity: 2.35 req/s over 1.80 req/s per replica", 0.4))
    slower = status_wire(status_after(3, 3, "capacity: 2.31 req/s over 1.80 req/s per replica", 0.45))
    other_reason = status_wire(status_after(3, 3, "latency: observed p95 at 1.30× the target", 0.4))
    scaled = status_wire(status_after(4, 3, "capacity: 2.31 req/s over 1.80 req/s per replica", 0.4))
    assert needs_write(None, base, refresh_due=False)
    assert not needs_write(base, same_kind, refresh_due=True)  # only figures in the reason moved
    assert not needs_write(base, slower, refresh_due=False)  # observed values wait for the refresh
    assert needs_write(base, slower, refresh_due=True)
    assert needs_write(base, other_reason, refresh_due=False)
    assert needs_write(base, scaled, refresh_due=False)


# --- which pods are scraped ------------------------------------------------------------------------------------------


def pod(name: str, ip: str | None = "10.0.0.5", ready: bool = True, node_name: str = "n1", **meta: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": "ns", **meta},
        "spec": {"nodeName": node_name},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


REAL = {"n1": {"metadata": {"name": "n1"}}}
FAKE = {"n1": {"metadata": {"name": "n1", "annotations": {"kwok.x-k8s.io/node": "fake"}}}}


@pytest.mark.parametrize(
    ("the_pod", "nodes", "overrides", "expected"),
    [
        (pod("a"), REAL, None, "10.0.0.5:8000"),
        (pod("a", ip="fd00::5"), REAL, None, "[fd00::5]:8000"),
        (pod("a", ip=None), REAL, None, None),  # no IP yet
        (pod("a", ready=False), REAL, None, None),  # not serving yet
        (pod("a"), FAKE, None, None),  # kwok node: the IP is fictional, never dialled
        (pod("a"), FAKE, {("ns", "a"): "127.0.0.1:18001"}, "127.0.0.1:18001"),  # the local plane's map
        (pod("b"), REAL, {("ns", "a"): "127.0.0.1:18001"}, None),  # with a map, only what it lists
    ],
)
def test_scrape_address(the_pod: JSON, nodes: JSON, overrides: Any, expected: str | None) -> None:
    assert scrape_address(the_pod, nodes, 8000, overrides) == expected


def test_only_leaders_that_are_not_terminating_serve() -> None:
    lws = "leaderworkerset.sigs.k8s.io/worker-index"
    pods = [
        pod("plain"),
        pod("leader", labels={lws: "0"}),
        pod("worker", labels={lws: "1"}),
        pod("leaving", deletionTimestamp="2026-01-01T00:00:00Z"),
    ]
    assert [p["metadata"]["name"] for p in serving_pods(pods)] == ["plain", "leader"]


def test_file_sd_documents_map_pods_to_addresses() -> None:
    documents = [
        [{"targets": ["127.0.0.1:18001"], "labels": {"namespace": "ns", "pod": "a"}}],
        [{"targets": ["127.0.0.1:18002"], "labels": {"namespace": "ns"}}],  # no pod label: ignored
        {"not": "a list"},
    ]
    assert targets_from_file_sd(documents) == {("ns", "a"): "127.0.0.1:18001"}


# --- one pass ------------------------------------------------------------------------------------------------------


class FakeSource:
    def __init__(self, stats: WindowStats | None = None, error: str | None = None) -> None:
        self.stats, self.error = stats, error

    async def window(
        self,
        namespace: str,
        name: str,
        pods: Sequence[Mapping[str, Any]],
        nodes: Sequence[Mapping[str, Any]],
        version: str,
    ) -> WindowStats:
        if self.error:
            raise MetricsUnavailableError(self.error)
        assert self.stats is not None
        return self.stats

    async def aclose(self) -> None:
        pass


def load(rate: float, ttft: float = 0.3, pods: int = 1) -> WindowStats:
    return WindowStats(pods, rate, ttft, 0.02, 0.0, 10.0, 0.3, 1155.0, 211.0, finished=100.0)


def deployment(replicas: JSON, status_replicas: int = 1) -> JSON:
    body: JSON = yaml.safe_load((REPO / "examples" / "llama-3.1-70b-fp8-h200.yaml").read_text())
    body["metadata"].update(namespace="ns", uid="u1", generation=1)
    body["spec"]["replicas"] = replicas
    body["spec"]["serving"].pop("hfTokenSecretRef")
    user_spec = LLMDeployment.model_validate(body).spec
    planned = Reconciler(FakeKube(), OperatorSettings(allow_hub=False)).assess(
        "ns", "llama-3-1-70b-fp8", user_spec, observed(ready=1)
    )
    assert planned.plan is not None
    body["status"] = {"plan": planned.plan.to_wire(), "replicas": status_replicas}
    return body


def observed(ready: int) -> Observed:
    workload = {"kind": "Deployment", "status": {"readyReplicas": ready}}
    nodes: list[Mapping[str, Any]] = [node(f"h200-{i}", "NVIDIA-H200", pool="h200") for i in range(4)]
    return Observed(children={("Deployment", "llama-3-1-70b-fp8"): workload}, nodes=nodes)


def scaler(source: FakeSource) -> tuple[Autoscaler, FakeKube]:
    kube = FakeKube()
    reconciler = Reconciler(kube, OperatorSettings(allow_hub=False))
    return Autoscaler(reconciler, source, status_refresh_seconds=60.0, clock=lambda: 1000.0), kube


def run(autoscaler: Autoscaler, body: JSON, obs: Observed) -> list[Any]:
    return asyncio.run(autoscaler.run_once([(body, obs)]))


def test_a_load_step_scales_up_through_the_scale_subresource_and_reports_it() -> None:
    autoscaler, kube = scaler(FakeSource(load(rate=6.0)))  # several replicas' worth (~1.5 req/s each)
    body = deployment({"min": 1, "max": 6})
    events = run(autoscaler, body, observed(ready=1))
    scale = [w.body["spec"]["replicas"] for w in kube.writes if w.verb == "scale"]
    assert len(scale) == 1 and 3 <= scale[0] <= 6  # how many is decide()'s business: here, that it is written
    assert [e.reason for _, e in events] == ["ScaledUp"]
    assert kube.events() == [("Normal", "ScaledUp")]  # posted through the API module, from any thread
    status = next(w.body["autoscaling"] for w in kube.writes if w.verb == "status")
    assert status["desiredReplicas"] == scale[0] and status["history"][-1]["toReplicas"] == scale[0]
    assert status["reason"].startswith("capacity:")
    assert status["targetTtftP95Ms"] == 1000.0 and status["targetItlP95Ms"] == 50.0

    # The next pass sees its own writes (the new replicas starting) and the same load: it writes nothing.
    for write in (w for w in kube.writes if w.verb == "status"):
        body["status"].update(write.body)
    kube.writes.clear()
    body["spec"]["replicas"]["desired"] = scale[0]
    assert run(autoscaler, body, observed(ready=1)) == []
    assert kube.writes == []


def test_a_body_that_does_not_show_the_last_write_yet_costs_no_second_write() -> None:
    # The watch delivers the autoscaler's own status write after the next pass has read the body (a loaded machine):
    # within a refresh period, what was written counts, not the stale body.
    autoscaler, kube = scaler(FakeSource(load(rate=0.5)))
    body = deployment({"min": 1, "max": 6})
    run(autoscaler, body, observed(ready=1))
    assert [w.verb for w in kube.writes] == ["status"]
    kube.writes.clear()
    assert run(autoscaler, body, observed(ready=1)) == []  # the same, stale body
    assert kube.writes == []


def stored(patch: Any) -> Any:
    """A merge patch as the API server stores it: its nulls delete their keys."""
    if isinstance(patch, dict):
        return {k: stored(v) for k, v in patch.items() if v is not None}
    return [stored(v) for v in patch] if isinstance(patch, list) else patch


def test_a_due_refresh_with_nothing_moved_writes_nothing() -> None:
    # No load: the refresh period passes, every figure is what the body shows, so the steady state costs no write.
    now = [1000.0]
    kube = FakeKube()
    idle = WindowStats(1, 0.0, None, None, 0.0, 0.0, None, None, None, finished=0.0)
    autoscaler = Autoscaler(
        Reconciler(kube, OperatorSettings(allow_hub=False)),
        FakeSource(idle),
        status_refresh_seconds=60.0,
        clock=lambda: now[0],
    )
    body = deployment({"min": 1, "max": 6})
    run(autoscaler, body, observed(ready=1))
    assert [w.verb for w in kube.writes] == ["status"]
    for write in kube.writes:
        body["status"].update(stored(write.body))
    kube.writes.clear()
    now[0] += 61.0
    run(autoscaler, body, observed(ready=1))
    assert kube.writes == []


def test_a_pass_publishes_what_a_dashboard_draws() -> None:
    sample = REGISTRY.get_sample_value
    scaled = {"namespace": "ns", "name": "llama-3-1-70b-fp8", "direction": "up", "cause": "capacity"}
    before = sample("rightsizer_scaling_events_total", scaled) or 0.0
    autoscaler, _ = scaler(FakeSource(load(rate=6.0)))
    run(autoscaler, deployment({"min": 1, "max": 6}), observed(ready=1))
    ttft = {"namespace": "ns", "name": "llama-3-1-70b-fp8", "metric": "ttft"}
    assert sample("rightsizer_latency_p95_seconds", {**ttft, "source": "target"}) == 1.0
    assert sample("rightsizer_latency_p95_seconds", {**ttft, "source": "observed"}) == 0.3
    # 6 req/s on the one ready replica saturates it: no steady p95 to predict, so no series
    assert sample("rightsizer_latency_p95_seconds", {**ttft, "source": "predicted"}) is None
    assert sample("rightsizer_scaling_events_total", scaled) == before + 1
    one = {"namespace": "ns", "name": "llama-3-1-70b-fp8"}
    capacity = sample("rightsizer_capacity_requests_per_second", one)
    assert capacity is not None and capacity > 0  # one replica in force, at one replica's capacity

    light, _ = scaler(FakeSource(load(rate=0.5)))
    run(light, deployment({"min": 1, "max": 6}), observed(ready=1))
    predicted = sample("rightsizer_latency_p95_seconds", {**ttft, "source": "predicted"})
    assert predicted is not None and 0 < predicted < 1.0  # half a request a second is well within the target
    light.forget(("ns", "llama-3-1-70b-fp8"))
    assert sample("rightsizer_latency_p95_seconds", {**ttft, "source": "target"}) is None


def decisions(direction: str) -> float:
    return REGISTRY.get_sample_value("rightsizer_scaling_decisions_total", {"direction": direction}) or 0.0


def test_each_written_change_counts_one_scaling_decision_by_direction() -> None:
    # The metric docs/operator.md documents: one per replica change the autoscaler writes, none for a quiet pass.
    autoscaler, kube = scaler(FakeSource(load(rate=6.0)))
    body = deployment({"min": 1, "max": 6})
    up, down = decisions("up"), decisions("down")
    run(autoscaler, body, observed(ready=1))
    assert (decisions("up") - up, decisions("down") - down) == (1.0, 0.0)
    body["spec"]["replicas"]["desired"] = next(w.body["spec"]["replicas"] for w in kube.writes if w.verb == "scale")
    run(autoscaler, body, observed(ready=1))
    assert (decisions("up") - up, decisions("down") - down) == (1.0, 0.0)


def test_policy_and_spec_bounds_hold_the_count() -> None:
    autoscaler, kube = scaler(FakeSource(load(rate=20.0)))
    run(autoscaler, deployment({"min": 1, "max": 3}), observed(ready=1))
    assert [w.body["spec"]["replicas"] for w in kube.writes if w.verb == "scale"] == [3]


@pytest.mark.parametrize(
    ("replicas", "stats"),
    [
        ({"min": 2, "max": 2}, load(rate=20.0)),  # autoscaling off: no room
        ({"min": 1, "max": 6}, load(rate=20.0, pods=0)),  # nobody reports
        ({"min": 1, "max": 6}, WindowStats(1, None, None, None, 3.0, 1.0, None, None, None)),  # scraped once
    ],
)
def test_no_basis_no_decision_no_write(replicas: JSON, stats: WindowStats) -> None:
    autoscaler, kube = scaler(FakeSource(stats))
    assert run(autoscaler, deployment(replicas), observed(ready=1)) == []
    assert kube.writes == []


def test_unavailable_metrics_warn_once() -> None:
    autoscaler, kube = scaler(FakeSource(error="Prometheus at http://p: connection refused"))
    body = deployment({"min": 1, "max": 6})
    first = run(autoscaler, body, observed(ready=1))
    assert [(e.type, e.reason) for _, e in first] == [("Warning", "MetricsUnavailable")]
    assert run(autoscaler, body, observed(ready=1)) == []
    assert kube.verbs() == [("event", "Event", "llama-3-1-70b-fp8")]  # the one Warning; no scale, no status


@pytest.mark.parametrize(
    ("observed", "finished", "declared", "expected"),
    [
        (None, 0, 211, 211.0),  # nothing finished: the declared length
        (600.0, 2, 211, (2 * 600 + 20 * 211) / 22),  # two long requests barely move it
        (600.0, 200, 211, (200 * 600 + 20 * 211) / 220),  # a full window mostly speaks for itself
    ],
)
def test_expected_length_weighs_the_window_against_the_declared_workload(
    observed: float | None, finished: float, declared: int, expected: float
) -> None:
    assert expected_length(observed, finished, declared) == pytest.approx(expected)


def test_recent_members_outlive_their_pods_by_one_window() -> None:
    recent = Recent(window_seconds=15)
    assert recent.update(("ns", "chat"), ["a", "b"], now=0.0) == {"a", "b"}
    assert recent.update(("ns", "chat"), ["a", "c"], now=10.0) == {"a", "b", "c"}  # b left 10 s ago: still counts
    assert recent.update(("ns", "chat"), ["a", "c"], now=16.0) == {"a", "c"}
    assert recent.update(("ns", "other"), [], now=16.0) == set()


def test_recommend_mode_records_decisions_and_never_scales() -> None:
    autoscaler, kube = scaler(FakeSource(load(rate=6.0)))
    body = deployment({"min": 1, "max": 6})
    body["spec"]["autoscaling"] = {"mode": "Recommend"}
    events = run(autoscaler, body, observed(ready=1))
    assert [w for w in kube.writes if w.verb == "scale"] == []
    assert [e.reason for _, e in events] == ["ScaleRecommended"]
    assert "not changed: spec.autoscaling.mode is Recommend" in events[0][1].message
    status = next(w.body["autoscaling"] for w in kube.writes if w.verb == "status")
    assert status["desiredReplicas"] >= 3 and status["reason"].startswith("recommendation only: capacity:")
    assert (status["history"][-1]["fromReplicas"], status["history"][-1]["toReplicas"]) == (
        1,
        status["desiredReplicas"],
    )
    # The same recommendation again: no Event, no new history entry, and still no /scale.
    for write in (w for w in kube.writes if w.verb == "status"):
        body["status"].update(write.body)
    kube.writes.clear()
    assert run(autoscaler, body, observed(ready=1)) == []
    assert [w.verb for w in kube.writes] == []
    # Act (the default) on the same deployment scales.
    body["spec"]["autoscaling"] = {"mode": "Act"}
    run(autoscaler, body, observed(ready=1))
    assert [w.verb for w in kube.writes if w.verb == "scale"] == ["scale"]


def error_ratio(metric: str) -> float | None:
    labels = {"namespace": "ns", "name": "llama-3-1-70b-fp8", "metric": metric}
    return REGISTRY.get_sample_value("rightsizer_prediction_error_ratio", labels)


def test_a_slower_fleet_is_learnt_lowers_capacity_and_flips_prediction_accurate() -> None:
    from rightsizer.api.v1alpha1.plan import Plan
    from rightsizer.perf import Traffic, predict
    from rightsizer.perf.in_force import replica_of
    from tests.unit.helpers import facts_of

    body = deployment({"min": 1, "max": 6})
    user_spec = LLMDeployment.model_validate(body).spec
    model = replica_of(user_spec, facts_of(user_spec.model.name), Plan.model_validate(body["status"]["plan"]))
    truth = model.scaled(1.4, 1.4)
    rate = 0.5  # well within one replica
    p = predict(truth, Traffic(1155, 211, request_rate=rate))
    stats = WindowStats(
        1, rate, p.ttft.p95, p.itl.p95, 0.0, p.running, 0.3, 1155.0, 211.0, 30.0, p.ttft.mean, p.itl.mean
    )
    now = [0.0]
    kube = FakeKube()
    autoscaler = Autoscaler(
        Reconciler(kube, OperatorSettings(allow_hub=False)),
        FakeSource(stats),
        status_refresh_seconds=0.0,
        window_seconds=15.0,  # a fresh window every pass
        clock=lambda: now[0],
        accuracy_sustain_seconds=60.0,
    )
    conditions = []
    for i in range(10):
        now[0] = 15.0 * i
        run(autoscaler, body, observed(ready=1))
        for write in (w for w in kube.writes if w.verb == "status"):
            body["status"].update(write.body)
        kube.writes.clear()
        conditions.append(next(c for c in body["status"]["conditions"] if c["type"] == "PredictionAccurate"))
    perf = body["status"]["performance"]
    assert perf["decodeFactor"] == pytest.approx(1.4, rel=0.10)
    assert perf["prefillFactor"] == pytest.approx(1.4, rel=0.10)
    assert perf["samples"] == 10 and 0 < perf["confidence"] <= 1
    assert perf["capacityRps"] < perf["modelCapacityRps"]
    # Slower prompts also interrupt decoding longer: the ITL is a little more than 1.4x the model's.
    assert 1.4 <= perf["observedItlMs"] / perf["predictedItlMs"] <= 1.6
    assert perf["correctedItlMs"] == pytest.approx(perf["observedItlMs"], rel=0.10)
    assert conditions[0]["status"] == "True" and conditions[-1]["status"] == "False"
    assert conditions[-1]["reason"] == "OutsideInterval" and "× the predicted" in conditions[-1]["message"]
    assert error_ratio("itl") == pytest.approx(perf["observedItlMs"] / perf["predictedItlMs"], rel=0.01)
    autoscaler.forget(("ns", "llama-3-1-70b-fp8"))
    assert error_ratio("itl") is None
