"""Measured cold start (kube/startup.py) and its use as the autoscaler's lead time (scaling.status.behavior_of)."""

from __future__ import annotations

from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.kube.startup import lead_time_seconds, startup_seconds, startup_status
from rightsizer.policy import ReplicaBounds
from rightsizer.scaling.status import MAX_LEAD_TIME_S, behavior_of


def pod(pool: str, created: str, ready_at: str | None, ready: bool = True) -> dict[str, Any]:
    conditions = [] if ready_at is None else [{"type": "Ready", "status": str(ready), "lastTransitionTime": ready_at}]
    return {
        "metadata": {"name": "p", "creationTimestamp": created, "labels": {"rightsizer.dev/pool": pool}},
        "status": {"conditions": conditions},
    }


def test_a_ready_pod_is_measured_from_creation_to_its_ready_transition() -> None:
    assert startup_seconds(pod("h200", "2026-12-06T10:00:00Z", "2026-12-06T10:01:35Z")) == 95.0
    assert startup_seconds(pod("h200", "2026-12-06T10:00:00Z", "2026-12-06T10:01:35Z", ready=False)) is None
    assert startup_seconds(pod("h200", "2026-12-06T10:00:00Z", None)) is None  # still starting
    assert startup_seconds(pod("h200", "yesterday", "2026-12-06T10:01:35Z")) is None  # unreadable: not measured


def test_per_pool_quantiles_over_the_ready_pods() -> None:
    created = "2026-12-06T10:00:00Z"
    pods = [pod("h200", created, f"2026-12-06T10:0{m}:00Z") for m in (1, 2, 3, 4)]
    pods += [pod("h100", created, "2026-12-06T10:00:50Z"), pod("h100", created, None)]
    status = startup_status(pods, previous=None, pools={"h100", "h200"})
    assert status is not None
    by_pool = {e.pool: (e.p50_seconds, e.p95_seconds, e.samples) for e in status.pools}
    assert by_pool == {"h100": (50.0, 50.0, 1), "h200": (120.0, 240.0, 4)}  # nearest rank: start-ups that happened


def test_a_pool_with_no_ready_pod_now_keeps_what_status_showed() -> None:
    previous = {
        "pools": [
            {"pool": "h100", "p50Seconds": 70.0, "p95Seconds": 90.0, "samples": 3},
            {"pool": "made-up", "p50Seconds": 1.0, "p95Seconds": 1.0, "samples": 1},  # no such pool: dropped
        ]
    }
    status = startup_status([pod("h200", "2026-12-06T10:00:00Z", "2026-12-06T10:01:00Z")], previous, {"h100", "h200"})
    assert status is not None
    assert [(e.pool, e.p95_seconds) for e in status.pools] == [("h100", 90.0), ("h200", 60.0)]
    assert lead_time_seconds(status, "h100") == 90.0 and lead_time_seconds(status, "b200") is None
    assert startup_status([], None, {"h200"}) is None  # nothing measured yet: no field at all


@pytest.mark.parametrize(("lead", "forecast"), [(None, 60.0), (140.0, 140.0), (7200.0, MAX_LEAD_TIME_S)])
def test_the_measured_start_up_is_how_far_ahead_a_rising_rate_is_planned(lead: float | None, forecast: float) -> None:
    spec = LLMDeploymentSpec.model_validate({"model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}})
    assert behavior_of(spec, ReplicaBounds(1, 4, ()), 60.0, lead).forecast_s == forecast
