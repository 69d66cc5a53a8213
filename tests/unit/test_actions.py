"""Desired vs live: creates, updates, restores after hand edits, deletes leftovers, and nothing in steady state."""

import copy
from typing import Any

from rightsizer.kube.actions import Apply, Delete, is_subset, plan_actions
from rightsizer.kube.builders.children import stamped


def obj(kind: str = "Deployment", replicas: int = 1, name: str = "chat") -> dict[str, Any]:
    return stamped(
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "vllm"}]}}},
        }
    )


def live_of(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: the applied object plus defaults and status."""
    live = copy.deepcopy(desired)
    live["spec"]["progressDeadlineSeconds"] = 600
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"readyReplicas": 1}
    return live


def test_missing_child_is_created() -> None:
    assert plan_actions([obj()], {}) == [Apply(obj(), "created")]


def test_steady_state_writes_nothing() -> None:
    desired = obj()
    assert plan_actions([desired], {("Deployment", "chat"): live_of(desired)}) == []


def test_spec_change_is_applied() -> None:
    actions = plan_actions([obj(replicas=2)], {("Deployment", "chat"): live_of(obj())})
    assert actions == [Apply(obj(replicas=2), "updated")]


def test_hand_edit_is_restored() -> None:
    live = live_of(obj())
    live["spec"]["replicas"] = 7
    assert plan_actions([obj()], {("Deployment", "chat"): live}) == [Apply(obj(), "restored")]
    live = live_of(obj())
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert [a.why for a in plan_actions([obj()], {("Deployment", "chat"): live})] == ["restored"]  # type: ignore[union-attr]


def test_children_no_longer_wanted_are_deleted() -> None:
    lws = live_of(obj("LeaderWorkerSet"))
    lws["apiVersion"] = "leaderworkerset.x-k8s.io/v1"
    actions = plan_actions([obj()], {("Deployment", "chat"): live_of(obj()), ("LeaderWorkerSet", "chat"): lws})
    assert actions == [Delete("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "ns", "chat")]


def test_subset_semantics() -> None:
    assert is_subset({"a": 1}, {"a": 1, "b": 2})
    assert not is_subset({"a": 1}, {"a": 2})
    assert not is_subset({"l": [1, 2]}, {"l": [1, 2, 3]})
    assert is_subset({"l": [{"x": 1}]}, {"l": [{"x": 1, "y": 2}]})
