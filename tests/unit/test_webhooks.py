"""The admission handlers as tables: an LLMDeployment, the policies and the namespace's real objects -> the defaulting
patch, the verdict (admitted, or the HTTP code kopf answers with), the reservations kept and what was read. The
handlers are called as kopf calls them, with the Runtime in memo and kopf's indexes as keyword arguments.

A review is an attacker's as easily as the API server's (docs/security.md): the handlers write nothing, read no
ConfigMap or Secret, and keep no reservation that a real object does not back."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import kopf
import pytest
import yaml

from rightsizer.adapters.settings import OperatorSettings
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy
from rightsizer.controller.reconcile import Reconciler
from rightsizer.controller.reservations import ReservationBook
from rightsizer.controller.runtime import MEMO_KEY, Runtime
from rightsizer.controller.webhooks import default_llmdeployment, validate_llmdeployment
from tests.unit.fake_kube import FakeKube
from tests.unit.helpers import REPO
from tests.unit.test_discovery import node
from tests.unit.test_policy import plan_with

JSON = dict[str, Any]
H200_NODES = tuple(node(f"h200-{i}", "NVIDIA-H200", pool="h200") for i in range(2))
PLATFORM_DEFAULTS: JSON = yaml.safe_load((REPO / "examples" / "policies" / "platform-defaults.yaml").read_text())
H100_ONLY = {"metadata": {"name": "h100-only"}, "spec": {"namespaceSelector": {}, "allowed": {"gpuProducts": ["H100"]}}}
FOUR_GPUS = {
    "metadata": {"name": "four"},
    "spec": {"namespaceSelector": {}, "limits": {"namespaceQuota": [{"maxGpus": 4}]}},
}


def llmd(edit: Callable[[JSON], object] = lambda spec: None, name: str = "chat", namespace: str = "team-a") -> JSON:
    """Llama 3.1 8B on H200 pinned to 2 GPUs per replica and 1 replica (whatever the performance model's
    calibration says), as the API server sends it for review."""
    body: JSON = yaml.safe_load((REPO / "examples" / "llama-3.1-8b-h200.yaml").read_text())
    body["metadata"].update(name=name, namespace=namespace, uid=f"uid-{name}", generation=1)
    body["spec"]["workload"]["concurrency"] = 16
    body["spec"].setdefault("gpu", {})["tensorParallelSize"] = 2
    edit(body["spec"])
    return body


def kopf_body(body: JSON) -> kopf.Body:
    """What kopf hands a handler; kopf types the raw object as a TypedDict, the API server sends plain JSON."""
    return kopf.Body(cast(kopf.RawBody, copy.deepcopy(body)))


def without_slo(spec: JSON) -> None:
    del spec["slo"]


def indices(nodes: tuple[JSON, ...], policies: tuple[JSON, ...], llmds: tuple[JSON, ...] = ()) -> dict[str, Any]:
    """kopf's indexes as the handlers receive them (handlers.py builds them from watches)."""
    return {
        "llmds": {(b["metadata"]["namespace"], b["metadata"]["name"]): [b] for b in llmds},
        "children": {},
        "pods": {},
        "gpu_nodes": {None: list(nodes)},
        "sizing_policies": {None: [SizingPolicy.model_validate(p) for p in policies]},
        "namespaces": {"team-a": [{}]},
    }


def memo_with(kube: FakeKube, book: ReservationBook | None = None) -> kopf.Memo:
    memo = kopf.Memo()
    memo[MEMO_KEY] = Runtime(
        Reconciler(kube, OperatorSettings(allow_hub=False)),
        reservations=book if book is not None else ReservationBook(),
    )
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
    reserved: int = 0  # GPUs the book holds for the namespace afterwards
    nodes: tuple[JSON, ...] = H200_NODES
    policies: tuple[JSON, ...] = ()
    dryrun: bool = False
    llmds: tuple[JSON, ...] = ()  # the real LLMDeployments kopf's index holds


def sized(name: str, gpus: int) -> JSON:
    """A real neighbour in the index, sized: `gpus` H200 GPUs in one replica."""
    body = llmd(name=name)
    body["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "plan": plan_with(gpu_product="NVIDIA-H200", gpus_per_replica=gpus, tensor_parallel_size=gpus).to_wire(),
    }
    return body


VALIDATION = {
    "a spec no policy limits": Validation(llmd(), None, ""),
    "an invalid spec is refused naming the field": Validation(
        llmd(lambda spec: spec["workload"].update(concurrency="lots")), 422, "spec.workload.concurrency: "
    ),
    "a product the policy does not allow": Validation(llmd(), 403, "SizingPolicy h100-only", policies=(H100_ONLY,)),
    "a spec that cannot be sized yet is admitted, with why": Validation(
        llmd(), None, "cannot be sized yet: spec.gpu.products: no GPU pools", nodes=()
    ),
    "a spec that cannot be sized is still judged on what it states": Validation(
        llmd(lambda spec: spec["gpu"].update(products=["H200"])), 403, "SizingPolicy h100-only", nodes=(),
        policies=(H100_ONLY,),
    ),
    "a dry run says the plan": Validation(llmd(), None, "rightsizer plan: 2 × NVIDIA-H200 per replica", dryrun=True),
    "within the quota: a reservation in memory": Validation(llmd(), None, "", reserved=2, policies=(FOUR_GPUS,)),
    "within the quota, dry run: nothing reserved": Validation(
        llmd(), None, "rightsizer plan:", policies=(FOUR_GPUS,), dryrun=True
    ),
    "beyond the quota next to a real neighbour": Validation(
        llmd(lambda spec: spec["replicas"].update(min=2)),
        403,
        "would hold 6 GPUs",
        policies=(FOUR_GPUS,),
        llmds=(sized("other", 2),),
    ),
}  # fmt: skip


def validate(case: Validation, kube: FakeKube, book: ReservationBook | None = None) -> tuple[int | None, str]:
    warnings: list[str] = []
    try:
        validate_llmdeployment(
            body=kopf_body(case.body),
            operation="CREATE",
            dryrun=case.dryrun,
            warnings=warnings,
            namespace=str(case.body["metadata"]["namespace"]),
            memo=memo_with(kube, book),
            **indices(case.nodes, case.policies, case.llmds),
        )
    except kopf.AdmissionError as refusal:
        return refusal.code, str(refusal)
    return None, warnings[0] if warnings else ""


@pytest.mark.parametrize("case", VALIDATION.values(), ids=VALIDATION.keys())
def test_validation(case: Validation) -> None:
    kube, book = FakeKube(), ReservationBook()
    verdict, says = validate(case, kube, book)
    assert verdict == case.verdict
    assert case.says in says if case.says else says == ""
    assert sum(r.gpus for r in book.reservations("team-a")) == case.reserved
    assert kube.writes == []  # validation writes nothing to the cluster, dry run or not


def test_the_reservation_counts_against_the_next_request() -> None:
    """Two applies in a row in one namespace: the first reserves 2 of 4 GPUs, the second (4 GPUs) is refused."""
    kube, book = FakeKube(), ReservationBook()
    first = Validation(llmd(name="first"), None, "", policies=(FOUR_GPUS,))
    second = Validation(
        llmd(lambda spec: spec["replicas"].update(min=2), name="second"), 403, "", policies=(FOUR_GPUS,)
    )
    assert validate(first, kube, book)[0] is None
    verdict, says = validate(second, kube, book)
    assert verdict == 403 and "2 held by other LLMDeployments" in says
    assert kube.writes == []


def test_a_forged_review_reserves_nothing_lasting() -> None:
    """A review no object follows holds its GPUs for the TTL only (here 0 s); a real object keeps its reservation
    until its status is sized. Before, a forged review reserved GPUs in a Lease for five minutes, or for as long
    as a real object lived when it named that object with a higher generation."""
    kube, book = FakeKube(), ReservationBook(ttl=timedelta(0))
    forged = Validation(
        llmd(lambda spec: spec["replicas"].update(min=2), name="ghost"), None, "", policies=(FOUR_GPUS,)
    )
    assert validate(forged, kube, book)[0] is None  # 4 of 4 GPUs "reserved"
    after = Validation(llmd(lambda spec: spec["replicas"].update(min=2), name="real"), None, "", policies=(FOUR_GPUS,))
    assert validate(after, kube, book)[0] is None  # the ghost's reservation no longer counts
    assert [r.name for r in book.reservations("team-a")] == ["real"]
    # The real object reaches the index, unsized: its reservation is backed and outlives the TTL.
    unsized = llmd(lambda spec: spec["replicas"].update(min=2), name="real")
    third = Validation(llmd(name="third"), 403, "4 held by other", policies=(FOUR_GPUS,), llmds=(unsized,))
    assert validate(third, kube, book)[0] == 403
    assert kube.writes == []


def test_a_forged_review_reads_no_config_map_or_secret_of_any_namespace() -> None:
    """A review for team-b naming team-b's ConfigMap and token Secret: nothing is read (before, the webhook read
    the ConfigMap and listed its keys in the refusal, and fetched the Hub with team-b's token); what the spec
    states is still judged against the policy."""
    kube = FakeKube(
        config_maps={("team-b", "private"): {"secret-key-name": "{}"}},
        secrets={("team-b", "hf-token"): {"token": "hf_team_b"}},
    )

    def from_config_map(spec: JSON) -> None:
        spec["model"]["configMapRef"] = {"name": "private", "key": "config.json"}
        spec["serving"]["hfTokenSecretRef"] = {"name": "hf-token", "key": "token"}

    body = llmd(from_config_map, namespace="team-b")
    verdict, says = validate(Validation(body, None, ""), kube)
    assert verdict is None and "is read once the LLMDeployment exists" in says and "secret-key-name" not in says

    def on_h200_from_config_map(spec: JSON) -> None:
        from_config_map(spec)
        spec["gpu"]["products"] = ["H200"]

    refused = llmd(on_h200_from_config_map, namespace="team-b")
    assert validate(Validation(refused, 403, "", policies=(H100_ONLY,)), kube)[0] == 403
    assert kube.reads == [] and kube.writes == []
