"""Reconciler.reconcile as a table: an LLMDeployment and what the cluster holds -> the writes it sends, the Events it
returns and the conditions it reports; and the level-based promise that a pass over its own output writes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from rightsizer.adapters.k8s import MissingApiError, RejectedError
from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller.reconcile import Observed, Reconciler
from tests.unit.fake_kube import FakeKube
from tests.unit.helpers import REPO
from tests.unit.test_discovery import node

JSON = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"
SMALL = "llama-3.1-8b-h200.yaml"  # Llama 3.1 8B on H200, pinned below to 2 GPUs per replica and 1 replica
MULTINODE = "llama-3.1-405b-h100-multinode.yaml"  # Llama 3.1 405B bf16: 16 × H100, a LeaderWorkerSet
H200_NODES = tuple(node(f"h200-{i}", "NVIDIA-H200", pool="h200") for i in range(2))
H100_NODES = tuple(node(f"h100-{i}", "NVIDIA-H100-80GB-HBM3", pool="h100", memory="81559") for i in range(4))
H100_ONLY = {"metadata": {"name": "h100-only"}, "spec": {"namespaceSelector": {}, "allowed": {"gpuProducts": ["H100"]}}}
OWNED_BY_UID_1 = [
    {
        "apiVersion": "rightsizer.dev/v1alpha1",
        "kind": "LLMDeployment",
        "name": "llama-3-1-8b",
        "uid": "uid-1",
        "controller": True,
    }
]
STALE_LWS = {
    "apiVersion": "leaderworkerset.x-k8s.io/v1",
    "kind": "LeaderWorkerSet",
    "metadata": {"name": "llama-3-1-8b", "namespace": "team-a", "uid": "uid-lws", "ownerReferences": OWNED_BY_UID_1},
}
LOOKALIKE_LWS = {**STALE_LWS, "metadata": {"name": "llama-3-1-8b", "namespace": "team-a", "uid": "uid-lws"}}
USERS_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "llama-3-1-8b", "namespace": "team-a", "uid": "uid-users-svc"},
    "spec": {"selector": {"app": "mine"}, "ports": [{"port": 80}]},
}
CREATED = [("apply", "Deployment"), ("apply", "Service"), ("apply", "PodDisruptionBudget")]


def llmd(example: str, edit: Callable[[JSON], object] = lambda spec: None) -> JSON:
    """An example manifest as the API server would hand it to the operator; `edit` changes its spec in place."""
    body: JSON = yaml.safe_load((REPO / "examples" / example).read_text())
    body["metadata"].update(namespace="team-a", uid="uid-1", generation=1)
    if example == SMALL:  # a shape these tables can rely on whatever the performance model's calibration says
        body["spec"]["workload"]["concurrency"] = 16
        body["spec"].setdefault("gpu", {})["tensorParallelSize"] = 2
    edit(body["spec"])
    return body


@dataclass(frozen=True)
class Case:
    """One row: the object and the cluster around it -> what one reconcile does."""

    body: JSON
    writes: list[tuple[str, str]]  # (verb, kind) in order
    events: list[tuple[str, str]]  # (type, reason) in order
    conditions: dict[str, tuple[str, str]]  # type -> (status, reason), for the conditions this row is about
    replicas: int = 0  # status.replicas written
    nodes: tuple[JSON, ...] = H200_NODES
    policies: tuple[JSON, ...] = ()
    config_maps: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    fail_apply: Mapping[str, Exception] = field(default_factory=dict)
    children: Mapping[tuple[str, str], JSON] = field(default_factory=dict)
    stored: tuple[JSON, ...] = ()  # objects on the API server the label-selected watches do not see


CASES = {
    "a new spec creates its children, then reports the plan": Case(
        llmd(SMALL),
        [*CREATED, ("status", "LLMDeployment")],
        [("Normal", "Planned"), ("Normal", "Created"), ("Normal", "Created"), ("Normal", "Created")],
        {"Sized": ("True", "Planned"), "PolicyCompliant": ("True", "Compliant"), "Ready": ("False", "Waiting")},
        replicas=1,
    ),
    "spec.replicas.desired above max is held at max": Case(
        llmd(SMALL, lambda spec: spec["replicas"].update(desired=9)),
        [*CREATED, ("status", "LLMDeployment")],
        [("Normal", "Planned"), ("Normal", "Created"), ("Normal", "Created"), ("Normal", "Created")],
        {"Sized": ("True", "Planned")},
        replicas=4,
    ),
    "a child of a former plan is deleted": Case(
        llmd(SMALL),
        [*CREATED, ("delete", "LeaderWorkerSet"), ("status", "LLMDeployment")],
        [("Normal", "Planned"), *[("Normal", "Created")] * 3, ("Normal", "Deleted")],
        {"Sized": ("True", "Planned")},
        replicas=1,
        children={("LeaderWorkerSet", "llama-3-1-8b"): STALE_LWS},
    ),
    "a labelled look-alike this LLMDeployment does not control is not deleted": Case(
        llmd(SMALL),
        [*CREATED, ("status", "LLMDeployment")],
        [("Normal", "Planned"), *[("Normal", "Created")] * 3],
        {"Sized": ("True", "Planned")},
        replicas=1,
        children={("LeaderWorkerSet", "llama-3-1-8b"): LOOKALIKE_LWS},
    ),
    "a user's Service of the same name: nothing is written but the status": Case(
        llmd(SMALL),
        [("status", "LLMDeployment")],
        [("Normal", "Planned"), ("Warning", "ChildConflict")],
        {
            "Progressing": ("False", "ChildConflict"),
            "Degraded": ("True", "ChildConflict"),
            "Ready": ("False", "ChildConflict"),
        },
        replicas=1,
        stored=(USERS_SERVICE,),
    ),
    "an invalid spec is a condition, not a crash": Case(
        llmd(SMALL, lambda spec: spec["workload"].update(concurrency="lots")),
        [("status", "LLMDeployment")],
        [],
        {"Sized": ("False", "InvalidSpec"), "Ready": ("False", "NotSized")},
    ),
    "a missing model ConfigMap": Case(
        llmd(SMALL, lambda spec: spec["model"].update(name="acme/private", configMapRef={"name": "cfg"})),
        [("status", "LLMDeployment")],
        [("Warning", "ModelConfigUnavailable")],
        {"Sized": ("False", "ModelConfigUnavailable")},
    ),
    "no GPU pool known": Case(
        llmd(SMALL),
        [("status", "LLMDeployment")],
        [("Warning", "NoFeasiblePlan")],
        {"Sized": ("False", "NoFeasiblePlan")},
        nodes=(),
    ),
    "a policy forbids the only pool: nothing is applied": Case(
        llmd(SMALL),
        [("status", "LLMDeployment")],
        [("Warning", "PolicyViolation")],
        {"PolicyCompliant": ("False", "NoAllowedPool"), "Ready": ("False", "NotSized")},
        policies=(H100_ONLY,),
    ),
    "the API server rejects a child: the rest is not applied": Case(
        llmd(SMALL),
        [("apply", "Deployment"), ("status", "LLMDeployment")],
        [("Normal", "Planned"), ("Warning", "ApplyFailed")],
        {"Sized": ("True", "Planned"), "Degraded": ("True", "ApplyFailed"), "Ready": ("False", "ApplyFailed")},
        replicas=1,
        fail_apply={"Deployment": RejectedError("Deployment llama-3-1-8b: spec.template: Invalid value")},
    ),
    "a multi-node plan on a cluster without LeaderWorkerSet": Case(
        llmd(MULTINODE),
        [("apply", "LeaderWorkerSet"), ("status", "LLMDeployment")],
        [("Normal", "Planned")],
        {"Sized": ("False", "MissingAPI")},
        replicas=1,
        nodes=H100_NODES,
        fail_apply={"LeaderWorkerSet": MissingApiError("the cluster does not serve LeaderWorkerSet")},
    ),
}


def world(case: Case) -> tuple[FakeKube, Reconciler, Observed]:
    kube = FakeKube(config_maps=case.config_maps)
    kube.fail_apply.update(case.fail_apply)
    kube.put(case.body)
    for obj in case.stored:
        kube.put(obj)
    observed = Observed(
        children={key: copy.deepcopy(child) for key, child in case.children.items()},
        nodes=list(case.nodes),
        policies=[SizingPolicy.model_validate(p) for p in case.policies],
    )
    return kube, Reconciler(kube, OperatorSettings(allow_hub=False), clock=lambda: NOW), observed


def conditions_of(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {str(c["type"]): (str(c["status"]), str(c["reason"])) for c in status.get("conditions", [])}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_one_reconcile(case: Case) -> None:
    kube, reconciler, observed = world(case)
    events = reconciler.reconcile(case.body, observed)

    assert [(w.verb, w.kind) for w in kube.writes] == case.writes
    assert [(e.type, e.reason) for e in events] == case.events
    status = kube.writes[-1].body
    assert {t: c for t, c in conditions_of(status).items() if t in case.conditions} == case.conditions
    assert status["replicas"] == case.replicas
    assert status["observedGeneration"] == 1
    for write in kube.writes:
        if write.verb == "apply" and write.kind in ("Deployment", "LeaderWorkerSet"):
            assert write.body["spec"]["replicas"] == case.replicas  # the status says what the workload asks for


def test_a_condition_names_the_field_at_fault() -> None:
    kube, reconciler, observed = world(CASES["an invalid spec is a condition, not a crash"])
    reconciler.reconcile(CASES["an invalid spec is a condition, not a crash"].body, observed)
    sized = next(c for c in kube.writes[-1].body["conditions"] if c["type"] == "Sized")
    assert sized["message"].startswith("spec.workload.concurrency: ")


LEVEL_BASED = [
    "a new spec creates its children, then reports the plan",
    "a user's Service of the same name: nothing is written but the status",
    "an invalid spec is a condition, not a crash",
    "a missing model ConfigMap",
    "no GPU pool known",
    "a policy forbids the only pool: nothing is applied",
]


@pytest.mark.parametrize("name", LEVEL_BASED)
def test_a_pass_over_its_own_output_writes_nothing_and_repeats_no_event(name: str) -> None:
    """What kopf delivers next is the object with the status just written, and the children as applied."""
    case = CASES[name]
    kube, reconciler, observed = world(case)
    reconciler.reconcile(case.body, observed)
    kube.writes.clear()
    again = kube.objects[("rightsizer.dev/v1alpha1", "LLMDeployment", "team-a", str(case.body["metadata"]["name"]))]
    assert reconciler.reconcile(again.body, observed) == []
    assert kube.writes == []


def test_a_child_edited_by_hand_is_restored() -> None:
    case = CASES["a new spec creates its children, then reports the plan"]
    kube, reconciler, observed = world(case)
    reconciler.reconcile(case.body, observed)
    edited = observed.children[("Deployment", "llama-3-1-8b")]
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:latest"  # same spec hash
    kube.writes.clear()
    status = kube.objects[("rightsizer.dev/v1alpha1", "LLMDeployment", "team-a", "llama-3-1-8b")].body

    events = reconciler.reconcile(status, observed)

    assert [(e.type, e.reason) for e in events] == [("Normal", "Restored")]
    assert kube.verbs() == [("apply", "Deployment", "llama-3-1-8b")]
    image = kube.writes[0].body["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "vllm/vllm-openai:v0.19.0"


def test_a_conflict_names_the_object_and_the_fix_and_the_users_object_is_untouched() -> None:
    case = CASES["a user's Service of the same name: nothing is written but the status"]
    kube, reconciler, observed = world(case)
    reconciler.reconcile(case.body, observed)
    progressing = next(c for c in kube.writes[-1].body["conditions"] if c["type"] == "Progressing")
    assert progressing["message"] == (
        "Service llama-3-1-8b already exists and is not controlled by this LLMDeployment (it has no controller); "
        "rightsizer leaves it alone and creates no children: rename or delete that Service, or give the "
        "LLMDeployment another name"
    )
    assert kube.objects[("v1", "Service", "team-a", "llama-3-1-8b")].body == USERS_SERVICE


def test_the_conflict_clears_once_the_users_object_is_gone() -> None:
    case = CASES["a user's Service of the same name: nothing is written but the status"]
    kube, reconciler, observed = world(case)
    reconciler.reconcile(case.body, observed)
    del kube.objects[("v1", "Service", "team-a", "llama-3-1-8b")]
    kube.writes.clear()
    again = kube.objects[("rightsizer.dev/v1alpha1", "LLMDeployment", "team-a", "llama-3-1-8b")].body
    reconciler.reconcile(again, observed)
    assert [(w.verb, w.kind) for w in kube.writes] == [*CREATED, ("status", "LLMDeployment")]
    assert conditions_of(kube.writes[-1].body)["Progressing"] == ("True", "RollingOut")


def test_an_object_found_by_name_that_is_already_ours_is_not_created_again() -> None:
    """The watch can lag the operator's own create: the object read by name carries our UID, so it is compared,
    not re-created (and not a conflict)."""
    case = CASES["a new spec creates its children, then reports the plan"]
    kube, reconciler, observed = world(case)
    reconciler.reconcile(case.body, observed)
    observed.children.clear()  # the watch has not delivered them yet
    kube.writes.clear()
    again = kube.objects[("rightsizer.dev/v1alpha1", "LLMDeployment", "team-a", "llama-3-1-8b")].body
    assert reconciler.reconcile(again, observed) == []
    assert kube.writes == []


def test_pods_refused_by_admission_make_the_llmdeployment_not_ready_with_the_servers_message() -> None:
    case = CASES["a new spec creates its children, then reports the plan"]
    kube, reconciler, observed = world(case)
    reconciler.reconcile(case.body, observed)
    refusal = 'pods "llama-3-1-8b-6b9f-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": refusal}
    deployment = dict(observed.children[("Deployment", "llama-3-1-8b")])
    observed.children[("Deployment", "llama-3-1-8b")] = {**deployment, "status": {"conditions": [failure]}}
    kube.writes.clear()
    again = kube.objects[("rightsizer.dev/v1alpha1", "LLMDeployment", "team-a", "llama-3-1-8b")].body
    reconciler.reconcile(again, observed)
    status = kube.writes[-1].body
    assert conditions_of(status)["Ready"] == ("False", "FailedCreate")
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["message"] == refusal
