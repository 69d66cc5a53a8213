"""Waiting for GPUs is progress until the progress deadline (kube/progress.py)."""

from __future__ import annotations

from typing import Any

from rightsizer.kube.progress import DEFAULT_PROGRESS_DEADLINE_SECONDS, past_deadline, unschedulable_since


def pod(name: str, scheduled: str, since: str | None) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": "PodScheduled", "status": scheduled, "reason": "Unschedulable"}
    if since is not None:
        condition["lastTransitionTime"] = since
    return {"metadata": {"name": name}, "status": {"conditions": [condition]}}


def test_the_deadline_is_the_deployment_default() -> None:
    # kubernetes pkg/apis/apps/v1/defaults.go: SetDefaults_Deployment sets ProgressDeadlineSeconds to 600
    assert DEFAULT_PROGRESS_DEADLINE_SECONDS == 600


def test_the_longest_waiting_unschedulable_pod_counts() -> None:
    pods = [
        pod("a", "False", "2026-01-01T00:05:00Z"),
        pod("b", "False", "2026-01-01T00:01:00Z"),
        pod("c", "True", "2025-01-01T00:00:00Z"),  # scheduled long ago: not waiting
    ]
    assert unschedulable_since(pods) == "2026-01-01T00:01:00Z"


def test_no_waiting_pod_no_time() -> None:
    assert unschedulable_since([pod("c", "True", "2026-01-01T00:00:00Z"), {"metadata": {}}]) is None
    assert unschedulable_since([pod("x", "False", None), pod("y", "False", "yesterday")]) is None


def test_past_the_deadline_only_when_it_has_passed() -> None:
    since = "2026-01-01T00:00:00Z"
    assert not past_deadline(since, "2026-01-01T00:09:59Z", 600)
    assert past_deadline(since, "2026-01-01T00:10:00Z", 600)
    assert not past_deadline(None, "2026-01-01T01:00:00Z", 600)
    assert not past_deadline("garbage", "2026-01-01T01:00:00Z", 600)
