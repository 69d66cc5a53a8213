"""Desired vs live: creates, updates, restores after hand edits, deletes leftovers, nothing in steady state, and
nothing at all on objects this LLMDeployment does not control (by UID)."""

import copy
from typing import Any

from rightsizer.kube.actions import Apply, Conflict, Delete, is_subset, missing, owned_by, plan_actions
from rightsizer.kube.builders.children import stamped

OWNER = "uid-llmd"


def owner_ref(uid: str = OWNER, *, kind: str = "LLMDeployment", controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": "rightsizer.dev/v1alpha1", "kind": kind, "name": "chat", "uid": uid, "controller": controller}


def obj(kind: str = "Deployment", replicas: int = 1, name: str = "chat") -> dict[str, Any]:
    return stamped(
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "labels": {"a": "b"}, "ownerReferences": [owner_ref()]},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "vllm"}]}}},
        }
    )


def live_of(desired: dict[str, Any], uid: str = "uid-child") -> dict[str, Any]:
    """What the API server returns: the applied object plus its UID, defaults and status."""
    live = copy.deepcopy(desired)
    live["metadata"]["uid"] = uid
    live["spec"]["progressDeadlineSeconds"] = 600
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"readyReplicas": 1}
    return live


def foreign(kind: str, name: str = "chat", owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A user's own object of that name: no rightsizer labels, maybe another controller."""
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": "uid-users"}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": {"ports": [{"port": 80}]}}


def with_uid(desired: dict[str, Any], uid: str) -> dict[str, Any]:
    return {**desired, "metadata": {**desired["metadata"], "uid": uid}}


def test_missing_child_is_created_without_a_uid() -> None:
    assert plan_actions([obj()], {}, OWNER) == [Apply(obj(), "created")]
    assert missing([obj(), obj("Service")], {("Deployment", "chat"): live_of(obj())}) == [obj("Service")]


def test_steady_state_writes_nothing() -> None:
    desired = obj()
    assert plan_actions([desired], {("Deployment", "chat"): live_of(desired)}, OWNER) == []


def test_spec_change_is_applied_with_the_live_uid_as_precondition() -> None:
    actions = plan_actions([obj(replicas=2)], {("Deployment", "chat"): live_of(obj(), "uid-7")}, OWNER)
    assert actions == [Apply(with_uid(obj(replicas=2), "uid-7"), "updated")]


def test_hand_edit_is_restored() -> None:
    live = live_of(obj())
    live["spec"]["replicas"] = 7
    assert plan_actions([obj()], {("Deployment", "chat"): live}, OWNER) == [
        Apply(with_uid(obj(), "uid-child"), "restored")
    ]
    live = live_of(obj())
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert [a.why for a in plan_actions([obj()], {("Deployment", "chat"): live}, OWNER)] == ["restored"]  # type: ignore[union-attr]


def test_children_no_longer_wanted_are_deleted_by_uid() -> None:
    lws = live_of(obj("LeaderWorkerSet"), "uid-lws")
    lws["apiVersion"] = "leaderworkerset.x-k8s.io/v1"
    live = {("Deployment", "chat"): live_of(obj()), ("LeaderWorkerSet", "chat"): lws}
    actions = plan_actions([obj()], live, OWNER)
    assert actions == [Delete("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "ns", "chat", "uid-lws")]


def test_a_users_service_of_the_same_name_is_a_conflict_and_nothing_is_written() -> None:
    """Before: the Service was server-side applied with force (taken over, then garbage-collected with the
    LLMDeployment), and the Deployment created beside it."""
    desired = [obj(), obj("Service"), obj("PodDisruptionBudget")]
    actions = plan_actions(desired, {("Service", "chat"): foreign("Service")}, OWNER)
    assert actions == [Conflict("Service", "chat", "it has no controller")]
    message = actions[0].message()  # type: ignore[union-attr]
    assert message.startswith("Service chat already exists and is not controlled by this LLMDeployment")
    assert "rename or delete that Service, or give the LLMDeployment another name" in message


def test_an_object_controlled_by_something_else_is_a_conflict() -> None:
    other = foreign("Service", owners=[owner_ref("uid-app", kind="Application")])
    other["metadata"]["ownerReferences"][0]["apiVersion"] = "argoproj.io/v1alpha1"
    [conflict] = plan_actions([obj("Service")], {("Service", "chat"): other}, OWNER)
    assert conflict == Conflict("Service", "chat", "controlled by Application chat")


def test_a_previous_llmdeployment_of_the_same_name_is_not_us() -> None:
    """Same name, same labels, another UID: the children of a deleted and re-created LLMDeployment that the
    garbage collector has not removed yet. They are not rewritten; the conflict clears when they are gone."""
    old = live_of(obj())
    old["metadata"]["ownerReferences"] = [owner_ref("uid-old")]
    [conflict] = plan_actions([obj()], {("Deployment", "chat"): old}, OWNER)
    assert isinstance(conflict, Conflict)
    assert conflict.holder == "controlled by another LLMDeployment chat (uid uid-old)"


def test_labelled_objects_not_controlled_by_us_are_never_deleted() -> None:
    """Before: anything labelled managed-by=rightsizer, instance=<name> that was not desired was deleted."""
    lookalike = live_of(obj("LeaderWorkerSet"), "uid-x")
    lookalike["metadata"].pop("ownerReferences")
    not_controller = live_of(obj("PodDisruptionBudget"), "uid-y")
    not_controller["metadata"]["ownerReferences"] = [owner_ref(controller=False)]
    live = {
        ("Deployment", "chat"): live_of(obj()),
        ("LeaderWorkerSet", "chat"): lookalike,
        ("PodDisruptionBudget", "chat"): not_controller,
    }
    assert plan_actions([obj()], live, OWNER) == []


def test_ownership_is_the_controller_reference_uid() -> None:
    assert owned_by(obj(), OWNER)
    assert not owned_by(obj(), "another")
    assert not owned_by(obj(), "")
    assert not owned_by(foreign("Service"), OWNER)
    assert not owned_by(foreign("Service", owners=[owner_ref(controller=False)]), OWNER)


def test_subset_semantics() -> None:
    assert is_subset({"a": 1}, {"a": 1, "b": 2})
    assert not is_subset({"a": 1}, {"a": 2})
    assert not is_subset({"l": [1, 2]}, {"l": [1, 2, 3]})
    assert is_subset({"l": [{"x": 1}]}, {"l": [{"x": 1, "y": 2}]})
