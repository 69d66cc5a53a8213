"""The admission handlers as tables: an LLMDeployment, the policies and the namespace's ledger -> the defaulting patch,
the verdict (admitted, or the HTTP code kopf answers with) and the writes. The handlers are called as kopf calls
them, with the Runtime in memo and kopf's indexes as keyword arguments."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
import pytest
import yaml

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller.reconcile import Reconciler
from rightsizer.controller.runtime import MEMO_KEY, Runtime
from rightsizer.controller.webhooks import (
    CAS_ATTEMPTS,
    LEDGER,
    LEDGER_ANNOTATION,
    default_llmdeployment,
    validate_llmdeployment,
)
from tests.unit.fake_kube import FakeKube, Stored
from tests.unit.helpers import REPO
from tests.unit.test_discovery import node

JSON = dict[str, Any]
H200_NODES = tuple(node(f"h200-{i}", "NVIDIA-H200", pool="h200") for i in range(2))
PLATFORM_DEFAULTS: JSON = yaml.safe_load((REPO / "examples" / "policies" / "platform-defaults.yaml").read_text())
H100_ONLY = {"metadata": {"name": "h100-only"}, "spec": {"namespaceSelector": {}, "allowed": {"gpuProducts": ["H100"]}}}
FOUR_GPUS = {
    "metadata": {"name": "four"},
    "spec": {"namespaceSelector": {}, "limits": {"namespaceQuota": [{"maxGpus": 4}]}},
}


def llmd(edit: Callable[[JSON], object] = lambda spec: None, name: str = "chat") -> JSON:
    """Llama 3.1 8B on H200 pinned to 2 GPUs per replica and 1 replica (whatever the performance model's
    calibration says), as the API server sends it for review."""
    body: JSON = yaml.safe_load((REPO / "examples" / "llama-3.1-8b-h200.yaml").read_text())
    body["metadata"].update(name=name, namespace="team-a", uid=f"uid-{name}", generation=1)
    body["spec"]["workload"]["concurrency"] = 16
    body["spec"].setdefault("gpu", {})["tensorParallelSize"] = 2
    edit(body["spec"])
    return body


def kopf_body(body: JSON) -> kopf.Body:
    """What kopf hands a handler; kopf types the raw object as a TypedDict, the API server sends plain JSON."""
    return kopf.Body(cast(kopf.RawBody, copy.deepcopy(body)))


def without_slo(spec: JSON) -> None:
    del spec["slo"]


def indices(nodes: tuple[JSON, ...], policies: tuple[JSON, ...]) -> dict[str, Any]:
    """kopf's indexes as the handlers receive them (handlers.py builds them from watches)."""
    return {
        "llmds": {},
        "children": {},
        "pods": {},
        "gpu_nodes": {None: list(nodes)},
        "sizing_policies": {None: [SizingPolicy.model_validate(p) for p in policies]},
        "namespaces": {"team-a": [{}]},
    }


def memo_with(kube: FakeKube) -> kopf.Memo:
    memo = kopf.Memo()
    memo[MEMO_KEY] = Runtime(Reconciler(kube, OperatorSettings(allow_hub=False)))
    return memo


# --- defaulting ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defaulting:
    body: JSON
    patch: JSON  # what kopf sends back as the JSON patch's source
    warnings: list[str]  # the field each warning names
    policies: tuple[JSON, ...] = (PLATFORM_DEFAULTS,)
    operation: str = "CREATE"
    old: JSON | None = None


ENGINE_DEFAULTS = {
    "engine": {"version": "0.19.0", "image": "registry.example.com/vllm/vllm-openai:v0.19.0"},
    "gpuMemoryUtilization": 0.9,
}
ENGINE_FIELDS = ["spec.serving.engine.version", "spec.serving.engine.image", "spec.serving.gpuMemoryUtilization"]
DEFAULTING = {
    "unset fields take the policy's defaults, each with a warning": Defaulting(
        llmd(without_slo),
        {"spec": {"serving": ENGINE_DEFAULTS, "slo": {"ttftP95Ms": 1000.0, "itlP95Ms": 80.0}}},
        [*ENGINE_FIELDS, "spec.slo.ttftP95Ms", "spec.slo.itlP95Ms"],
    ),
    "fields the tenant set are kept": Defaulting(llmd(), {"spec": {"serving": ENGINE_DEFAULTS}}, ENGINE_FIELDS),
    "no policy selects the namespace": Defaulting(llmd(without_slo), {}, [], policies=()),
    "an update that leaves the spec alone is not judged": Defaulting(
        llmd(without_slo), {}, [], operation="UPDATE", old=llmd(without_slo)
    ),
    "a delete is not judged": Defaulting(llmd(without_slo), {}, [], operation="DELETE"),
}


@pytest.mark.parametrize("case", DEFAULTING.values(), ids=DEFAULTING.keys())
def test_defaulting(case: Defaulting) -> None:
    kube = FakeKube()
    patch = kopf.Patch()
    warnings: list[str] = []
    default_llmdeployment(
        body=kopf_body(case.body),
        old=case.old,
        operation=case.operation,
        patch=patch,
        warnings=warnings,
        namespace="team-a",
        memo=memo_with(kube),
        **indices(H200_NODES, case.policies),
    )
    assert dict(patch) == case.patch
    assert [w.removeprefix("rightsizer: ").split(" = ")[0] for w in warnings] == case.warnings
    assert kube.writes == []  # defaulting never writes: the webhook is declared side-effect free


def test_before_startup_the_webhooks_admit_unchanged() -> None:
    """kopf may serve admission before the startup handler has put the Runtime in memo."""
    patch = kopf.Patch()
    warnings: list[str] = []
    body, hooks = kopf_body(llmd(without_slo)), indices(H200_NODES, (PLATFORM_DEFAULTS,))
    common: dict[str, Any] = {"body": body, "operation": "CREATE", "warnings": warnings, "namespace": "team-a"}
    default_llmdeployment(patch=patch, memo=kopf.Memo(), **common, **hooks)
    validate_llmdeployment(dryrun=False, memo=kopf.Memo(), **common, **hooks)
    assert (dict(patch), warnings) == ({}, [])


# --- validation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    body: JSON
    verdict: int | None  # None: admitted; else the HTTP code of kopf.AdmissionError
    says: str  # a phrase the refusal, or the first warning, must contain ("" for none)
    writes: list[tuple[str, str]] = field(default_factory=list)  # (verb, kind)
    nodes: tuple[JSON, ...] = H200_NODES
    policies: tuple[JSON, ...] = ()
    dryrun: bool = False
    ledger: str | None = None  # the namespace's reservations (the Lease's annotation) before the request


def reservation(name: str, gpus: int) -> str:
    return (
        f'[{{"generation":1,"gpus":{gpus},"name":"{name}","product":"NVIDIA-H200",'
        f'"reserved_at":"2099-01-01T00:00:00+00:00","uid":"uid-{name}"}}]'
    )


VALIDATION = {
    "a spec no policy limits": Validation(llmd(), None, ""),
    "an invalid spec is refused naming the field": Validation(
        llmd(lambda spec: spec["workload"].update(concurrency="lots")), 422, "spec.workload.concurrency: "
    ),
    "a product the policy does not allow": Validation(llmd(), 403, "SizingPolicy h100-only", policies=(H100_ONLY,)),
    "a spec that cannot be sized yet is admitted, with why": Validation(
        llmd(), None, "cannot be sized yet: spec.gpu.products: no GPU pools", nodes=()
    ),
    "a dry run says the plan": Validation(llmd(), None, "rightsizer plan: 2 × NVIDIA-H200 per replica", dryrun=True),
    "within the quota: the reservation is written": Validation(
        llmd(), None, "", writes=[("cas", "Lease")], policies=(FOUR_GPUS,)
    ),
    "within the quota, dry run: nothing is written": Validation(
        llmd(), None, "rightsizer plan:", policies=(FOUR_GPUS,), dryrun=True
    ),
    "beyond the quota with a neighbour's reservation": Validation(
        llmd(lambda spec: spec["replicas"].update(min=2)),
        403,
        "would hold 6 GPUs",
        policies=(FOUR_GPUS,),
        ledger=reservation("other", 2),
    ),
    "a malformed ledger is a server error, not a guess": Validation(
        llmd(), 500, "ledger is malformed", policies=(FOUR_GPUS,), ledger='[{"name": "x"}]'
    ),
}


def validate(case: Validation, kube: FakeKube) -> tuple[int | None, str]:
    warnings: list[str] = []
    try:
        validate_llmdeployment(
            body=kopf_body(case.body),
            operation="CREATE",
            dryrun=case.dryrun,
            warnings=warnings,
            namespace="team-a",
            memo=memo_with(kube),
            **indices(case.nodes, case.policies),
        )
    except kopf.AdmissionError as refusal:
        return refusal.code, str(refusal)
    return None, warnings[0] if warnings else ""


def kube_with_ledger(text: str | None) -> FakeKube:
    kube = FakeKube()
    if text is not None:
        meta = {"name": LEDGER[2], "namespace": "team-a", "annotations": {LEDGER_ANNOTATION: text}}
        kube.put({"apiVersion": LEDGER[0], "kind": LEDGER[1], "metadata": meta})
    return kube


@pytest.mark.parametrize("case", VALIDATION.values(), ids=VALIDATION.keys())
def test_validation(case: Validation) -> None:
    kube = kube_with_ledger(case.ledger)
    verdict, says = validate(case, kube)
    assert verdict == case.verdict
    assert case.says in says if case.says else says == ""
    assert [(w.verb, w.kind) for w in kube.writes] == case.writes


def test_the_reservation_counts_against_the_next_request() -> None:
    """Two applies in a row in one namespace: the first reserves 2 of 4 GPUs, the second (4 GPUs) is refused."""
    kube = kube_with_ledger(None)
    first = Validation(llmd(name="first"), None, "", policies=(FOUR_GPUS,))
    second = Validation(
        llmd(lambda spec: spec["replicas"].update(min=2), name="second"), 403, "", policies=(FOUR_GPUS,)
    )
    assert validate(first, kube)[0] is None
    verdict, says = validate(second, kube)
    assert verdict == 403 and "2 held by other LLMDeployments" in says
    assert kube.verbs() == [("cas", "Lease", LEDGER[2])]


class RivalKube(FakeKube):
    """Another operator replica writes the ledger between every read and write of this one."""

    def compare_and_swap_annotation(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        key: str,
        value: str,
        resource_version: str | None,
    ) -> bool:
        where = (api_version, kind, namespace, name)
        rival = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        self.objects[where] = Stored(rival, self.objects[where].version + 1 if where in self.objects else 1)
        return super().compare_and_swap_annotation(
            api_version, kind, namespace, name, key=key, value=value, resource_version=resource_version
        )


def test_a_ledger_that_never_settles_is_refused_with_a_retry_hint() -> None:
    kube = RivalKube()
    verdict, says = validate(Validation(llmd(), None, "", policies=(FOUR_GPUS,)), kube)
    assert verdict == 409 and "retry the apply" in says
    assert [w.verb for w in kube.writes] == ["cas"] * CAS_ATTEMPTS
