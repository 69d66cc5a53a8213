"""SizingPolicy: selection, combining with provenance, defaults, every violation kind, quota and replica bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rightsizer.api.v1alpha1.llmdeployment import LLMDeployment, LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.api.v1alpha1.sizingpolicy import SizingPolicy, SizingPolicySpec
from rightsizer.errors import SizingError
from rightsizer.facts.gpus import lookup
from rightsizer.policy import (
    AdmissionRequest,
    Decision,
    EffectivePolicy,
    GpuCharge,
    Reservation,
    ViolationKind,
    admit,
    apply_defaults,
    bound_recommendation,
    charge_of,
    check_quota,
    combine,
    evaluate,
    explain_dict,
    explain_lines,
    image_allowed,
    json_patch,
    live_reservations,
    namespace_usage,
    needs_evaluation,
    normalise_image,
    plan_within_policy,
    policy_problems,
    replica_bounds,
    restrict_pools,
    selecting,
    selector_matches,
    with_declared,
)
from rightsizer.policy.images import intersect_prefixes, normalise_prefix
from rightsizer.policy.selection import namespace_labels
from rightsizer.sizing import SizingRequest, plan, search
from rightsizer.sizing.pools import GpuPool
from tests.unit.helpers import REPO, facts_of, spec_of

SMALL = "meta-llama/Llama-3.1-8B-Instruct"
BIG = "meta-llama/Llama-3.1-70B-Instruct"
HUGE = "meta-llama/Llama-3.1-405B-Instruct"
H100 = "NVIDIA-H100-80GB-HBM3"
H200 = "NVIDIA-H200"


def policy(name: str, **spec: Any) -> SizingPolicy:
    return SizingPolicy.model_validate({"metadata": {"name": name}, "spec": spec})


def effective(*policies: SizingPolicy, namespace: str = "team-a") -> EffectivePolicy:
    return combine(namespace, policies)


def pool(product: str, name: str | None = None, price: float | None = None, per_node: int = 8) -> GpuPool:
    gpu = lookup(product)
    return GpuPool(name or gpu.short_name.lower(), gpu, per_node, None, price)


@cache
def small_plan() -> Plan:
    """A real plan for Llama-3.1-8B on one H100; cases vary the fields they test."""
    return plan(SizingRequest(spec_of(SMALL), facts_of(SMALL), [pool("H100")]), SMALL)


def small_spec(**fields: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"name": SMALL}, **fields})


def plan_with(**fields: Any) -> Plan:
    return small_plan().model_copy(update=fields)


# --- selection ------------------------------------------------------------------------------------------------------

SELECTOR_CASES = [
    ("empty selects everything", {}, {"team": "ml"}, True),
    ("matchLabels equal", {"matchLabels": {"team": "ml"}}, {"team": "ml"}, True),
    ("matchLabels other value", {"matchLabels": {"team": "ml"}}, {"team": "web"}, False),
    ("matchLabels missing key", {"matchLabels": {"team": "ml"}}, {}, False),
    ("In", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
    ("In, value not listed", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {"tier": "c"},
     False),
    ("In, key missing", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {}, False),
    ("NotIn, other value", {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]},
     {"tier": "b"}, True),
    ("NotIn, listed value", {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]},
     {"tier": "a"}, False),
    ("NotIn, key missing holds", {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {},
     True),
    ("Exists", {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
    ("Exists, missing", {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {}, False),
    ("DoesNotExist", {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {}, True),
    ("DoesNotExist, present", {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": "x"},
     False),
    ("labels and expressions must all hold",
     {"matchLabels": {"team": "ml"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
     {"team": "ml", "env": "dev"}, False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "selector", "labels", "selected"), SELECTOR_CASES, ids=[c[0] for c in SELECTOR_CASES])
def test_selector(case: str, selector: dict[str, Any], labels: dict[str, str], selected: bool) -> None:
    p = policy("p", namespaceSelector=selector)
    assert selector_matches(p.spec.namespace_selector, labels) is selected


def test_namespace_name_label_is_implicit_and_wins() -> None:
    by_name = policy("by-name", namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "team-a"}})
    assert [p.name for p in selecting([by_name], "team-a")] == ["by-name"]
    assert selecting([by_name], "team-b") == []
    assert namespace_labels("team-a", {"kubernetes.io/metadata.name": "spoofed"})["kubernetes.io/metadata.name"] == (
        "team-a"
    )


def test_selecting_filters_and_orders_by_name() -> None:
    policies = [
        policy("zeta"),
        policy("alpha", namespaceSelector={"matchLabels": {"team": "ml"}}),
        policy("web-only", namespaceSelector={"matchLabels": {"team": "web"}}),
    ]
    assert [p.name for p in selecting(policies, "ns", {"team": "ml"})] == ["alpha", "zeta"]


@pytest.mark.parametrize(
    "requirement",
    [
        {"key": "a", "operator": "In"},
        {"key": "a", "operator": "NotIn", "values": []},
        {"key": "a", "operator": "Exists", "values": ["x"]},
        {"key": "a", "operator": "Equals", "values": ["x"]},
    ],
)
def test_malformed_selector_requirements_are_refused(requirement: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        policy("p", namespaceSelector={"matchExpressions": [requirement]})


def test_duplicate_quota_products_and_pool_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="more than once"):
        policy("p", limits={"namespaceQuota": [{"product": "H200", "maxGpus": 8}, {"product": "H200", "maxGpus": 4}]})
    with pytest.raises(ValidationError, match="more than once"):
        policy("p", pools=[{"name": "a", "product": "H200", "gpusPerNode": 8}] * 2)


# --- images ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "normalised"),
    [
        ("vllm/vllm-openai:v0.19.0", "docker.io/vllm/vllm-openai:v0.19.0"),
        ("ubuntu", "docker.io/library/ubuntu"),
        ("docker.io/ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("index.docker.io/vllm/vllm-openai", "docker.io/vllm/vllm-openai"),
        ("registry.example.com/vllm/vllm-openai:v1", "registry.example.com/vllm/vllm-openai:v1"),
        ("localhost:5000/vllm:dev", "localhost:5000/vllm:dev"),
        ("localhost/vllm", "localhost/vllm"),
    ],
)
def test_image_normalisation(image: str, normalised: str) -> None:
    assert normalise_image(image) == normalised


IMAGE_CASES = [
    ("vllm/vllm-openai:v0.19.0", ["docker.io/vllm/"], True),
    ("vllm/vllm-openai:v0.19.0", ["vllm/"], True),
    ("vllm/vllm-openai:v0.19.0", ["vllm"], True),
    ("vllm/vllm-openai:v0.19.0", ["vllm/vllm-openai"], True),
    ("vllm/vllm-openai-fork:v1", ["vllm/vllm-openai"], False),
    ("registry.example.com/vllm/vllm-openai:v1", ["registry.example.com"], True),
    ("registry.example.com.evil.io/vllm:v1", ["registry.example.com"], False),
    ("registry.example.com/vllm/vllm-openai@sha256:abc", ["registry.example.com/vllm/vllm-openai@"], True),
    ("ghcr.io/vllm/vllm-openai:v1", ["registry.example.com/", "docker.io/vllm/"], False),
]


@pytest.mark.parametrize(("image", "prefixes", "allowed"), IMAGE_CASES)
def test_image_prefixes_match_at_a_path_boundary(image: str, prefixes: list[str], allowed: bool) -> None:
    assert image_allowed(image, [normalise_prefix(p) for p in prefixes]) is allowed


@pytest.mark.parametrize(
    ("left", "right", "both"),
    [
        (["docker.io/vllm/"], ["vllm/vllm-openai"], ("docker.io/vllm/vllm-openai",)),
        (["registry.example.com/"], ["registry.example.com/ml/", "ghcr.io/"], ("registry.example.com/ml/",)),
        (["registry.example.com/"], ["ghcr.io/"], ()),
        (["a.io/x", "a.io/x/y"], ["a.io/"], ("a.io/x",)),
    ],
)
def test_prefix_sets_intersect_as_sets_of_images(left: list[str], right: list[str], both: tuple[str, ...]) -> None:
    assert intersect_prefixes(left, right) == both


# --- combining ------------------------------------------------------------------------------------------------------


def test_numeric_limits_take_the_smallest_and_name_every_policy_that_sets_it() -> None:
    e = effective(
        policy("gpu-budget", limits={"maxGpusPerReplica": 8, "maxReplicas": 4}),
        policy("strict", limits={"maxGpusPerReplica": 4, "maxModelLen": 32768}),
        policy("also-strict", limits={"maxGpusPerReplica": 4}),
        policy("silent"),
    )
    assert e.policies == ("also-strict", "gpu-budget", "silent", "strict")
    assert e.max_gpus_per_replica is not None and e.max_gpus_per_replica.value == 4
    assert e.max_gpus_per_replica.policies == ("also-strict", "strict")
    assert e.max_replicas is not None and (e.max_replicas.value, e.max_replicas.policies) == (4, ("gpu-budget",))
    assert e.max_model_len is not None and e.max_model_len.policies == ("strict",)


def test_allow_lists_intersect_after_resolving_aliases() -> None:
    e = effective(
        policy("a", allowed={"gpuProducts": ["H200", "H100"], "quantizations": ["fp8", "none"]}),
        policy("b", allowed={"gpuProducts": ["NVIDIA-H200", "B200"], "dtypes": ["bfloat16"]}),
        policy("c"),
    )
    assert e.gpu_products is not None and e.gpu_products.value == {H200}
    assert e.gpu_products.policies == ("a", "b")
    assert e.quantizations is not None and e.quantizations.value == {"fp8", "none"}
    assert e.dtypes is not None and e.dtypes.value == {"bfloat16"}
    assert e.pool_names is None and e.conflicts == ()


def test_disjoint_allow_lists_allow_nothing_and_say_so() -> None:
    e = effective(policy("a", allowed={"gpuProducts": ["H100"]}), policy("b", allowed={"gpuProducts": ["H200"]}))
    assert e.gpu_products is not None and e.gpu_products.value == frozenset()
    assert any("allowed.gpuProducts: SizingPolicies a, b have no value in common" in c for c in e.conflicts)
    decision = evaluate(spec_of(SMALL), plan_with(gpu_product=H100), e)
    assert "plan runs on NVIDIA-H100-80GB-HBM3; SizingPolicies a and b allow none" in decision.message()


def test_quotas_take_the_smallest_per_product_and_keep_the_all_products_one() -> None:
    e = effective(
        policy("a", limits={"namespaceQuota": [{"product": "H200", "maxGpus": 16}, {"maxGpus": 64}]}),
        policy("b", limits={"namespaceQuota": [{"product": "NVIDIA-H200", "maxGpus": 8}]}),
    )
    assert [(q.value, q.policies) for q in e.quotas] == [((None, 64), ("a",)), ((H200, 8), ("b",))]
    assert [q.value for q in e.quota_for("H200")] == [(None, 64), (H200, 8)]
    assert [q.value for q in e.quota_for("H100")] == [(None, 64)]


def test_required_fields_accumulate() -> None:
    e = effective(
        policy("a", required={"slo": ["ttftP95Ms"]}), policy("b", required={"slo": ["ttftP95Ms", "itlP95Ms"]})
    )
    assert [(r.value.value, r.policies) for r in e.required_slo] == [("itlP95Ms", ("b",)), ("ttftP95Ms", ("a", "b"))]


def test_defaults_numeric_take_the_tightest_text_takes_the_first_by_name_and_records_the_conflict() -> None:
    e = effective(
        policy("b", defaults={"slo": {"ttftP95Ms": 800}, "engine": {"version": "0.11.0"}, "gpuMemoryUtilization": 0.9}),
        policy("a", defaults={"slo": {"ttftP95Ms": 500, "itlP95Ms": 50}, "engine": {"version": "0.19.0"}}),
    )
    d = e.defaults
    assert d.ttft_p95_ms is not None and (d.ttft_p95_ms.value, d.ttft_p95_ms.policies) == (500, ("a",))
    assert d.itl_p95_ms is not None and d.itl_p95_ms.value == 50
    assert d.gpu_memory_utilization is not None and d.gpu_memory_utilization.policies == ("b",)
    assert d.engine_version is not None and (d.engine_version.value, d.engine_version.policies) == ("0.19.0", ("a",))
    assert e.conflicts == (
        "defaults.engine.version: 0.19.0 from SizingPolicy a is used; also set to 0.11.0 (SizingPolicy b)",
    )


def test_declared_pools_accumulate_and_a_differing_redeclaration_is_a_conflict() -> None:
    h200 = {"name": "h200", "product": "H200", "gpusPerNode": 8, "pricePerGpuHour": 3.5}
    e = effective(
        policy("a", pools=[h200]),
        policy("b", pools=[h200, {"name": "b200", "product": "B200", "gpusPerNode": 8}]),
        policy("c", pools=[{**h200, "pricePerGpuHour": 9.0}]),
    )
    assert [(p.value.name, p.policies) for p in e.pools] == [("b200", ("b",)), ("h200", ("a", "b"))]
    assert e.pools[1].value.price_per_gpu_hour == 3.5
    assert any("h200 is declared differently by SizingPolicy a and c" in c for c in e.conflicts)


def test_a_default_image_the_combined_prefixes_refuse_is_a_conflict() -> None:
    e = effective(
        policy("a", defaults={"engine": {"imageRepository": "ghcr.io/acme/vllm"}}),
        policy("b", allowed={"engineImages": ["registry.example.com/"]}),
    )
    assert any("defaults.engine.imageRepository ghcr.io/acme/vllm (SizingPolicy a)" in c for c in e.conflicts)


# --- defaults -------------------------------------------------------------------------------------------------------

DEFAULTS = policy(
    "platform",
    defaults={
        "engine": {"version": "0.11.0", "imageRepository": "registry.example.com/vllm/vllm-openai"},
        "slo": {"ttftP95Ms": 800, "itlP95Ms": 60},
        "gpuMemoryUtilization": 0.85,
    },
)


def test_defaults_fill_only_unset_fields_and_say_where_they_come_from() -> None:
    spec = spec_of(SMALL, slo={"ttftP95Ms": 300})
    result = apply_defaults(spec, effective(DEFAULTS))
    applied = {d.field: d.value for d in result.applied}
    assert applied == {
        "spec.serving.engine.version": "0.11.0",
        "spec.serving.engine.image": "registry.example.com/vllm/vllm-openai:v0.11.0",
        "spec.serving.gpuMemoryUtilization": 0.85,
        "spec.slo.itlP95Ms": 60,
    }
    assert result.spec.slo.ttft_p95_ms == 300
    assert result.spec.serving.engine.image == "registry.example.com/vllm/vllm-openai:v0.11.0"
    assert all("SizingPolicy platform" in d.why for d in result.applied)


@pytest.mark.parametrize(
    ("engine", "version", "image"),
    [
        ({"version": "0.19.0"}, "0.19.0", "registry.example.com/vllm/vllm-openai:v0.19.0"),
        ({"image": "vllm/vllm-openai:v0.10.2"}, "0.19.0", "vllm/vllm-openai:v0.10.2"),
        ({}, "0.11.0", "registry.example.com/vllm/vllm-openai:v0.11.0"),
    ],
    ids=["version set: image follows it", "image set: version untouched", "neither: both defaulted"],
)
def test_engine_defaults_never_split_image_from_version(engine: dict[str, str], version: str, image: str) -> None:
    result = apply_defaults(spec_of(SMALL, serving={"engine": engine}), effective(DEFAULTS))
    assert (result.spec.serving.engine.version, result.spec.serving.engine.image) == (version, image)


def test_no_defaults_leave_the_spec_as_it_was() -> None:
    spec = spec_of(SMALL)
    result = apply_defaults(spec, effective(policy("limits-only", limits={"maxReplicas": 2})))
    assert result.applied == () and result.spec is spec


@pytest.mark.parametrize(
    ("model", "with_facts", "expected"),
    [
        (SMALL, True, 32768),  # Llama-3.1 defaults to 131,072 tokens, above the cap
        ("Qwen/Qwen2.5-7B-Instruct", True, None),  # its default 32,768 is within the cap
        (SMALL, False, None),  # without facts the plan check refuses instead
    ],
)
def test_max_model_len_cap_becomes_the_default_when_the_model_default_exceeds_it(
    model: str, with_facts: bool, expected: int | None
) -> None:
    cap = effective(policy("cap", limits={"maxModelLen": 32768}))
    result = apply_defaults(spec_of(model), cap, facts_of(model) if with_facts else None)
    assert result.spec.serving.max_model_len == expected


def _apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add` on object members, enough to check the webhook's patch."""
    for op in ops:
        assert op["op"] == "add"
        *parents, leaf = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = obj
        for key in parents:
            node = node[key]
        node[leaf] = op["value"]
    return obj


@pytest.mark.parametrize(
    "raw_spec",
    [
        {"model": {"name": SMALL}},
        {"model": {"name": SMALL}, "slo": None, "serving": {"maxModelLen": 8192}},
        {"model": {"name": SMALL}, "serving": {"engine": {"extraArgs": ["--enable-prefix-caching"]}}},
    ],
)
def test_json_patch_applies_to_the_object_as_sent_and_gives_the_defaulted_spec(raw_spec: dict[str, Any]) -> None:
    obj = {
        "apiVersion": "rightsizer.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "x"},
        "spec": raw_spec,
    }
    result = apply_defaults(LLMDeploymentSpec.model_validate({k: v for k, v in raw_spec.items() if v is not None}),
                            effective(DEFAULTS))  # fmt: skip
    patched = _apply_patch(yaml.safe_load(yaml.safe_dump(obj)), json_patch(obj, result.applied))
    assert LLMDeploymentSpec.model_validate(patched["spec"]) == result.spec
    assert patched["spec"]["model"] == raw_spec["model"]


# --- evaluation: every violation kind -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViolationCase:
    id: str
    policy: dict[str, Any]
    spec: dict[str, Any]
    plan: dict[str, Any] | None  # fields changed on the real plan; None: evaluate without a plan
    kind: ViolationKind
    field: str
    message: str


VIOLATIONS = [
    ViolationCase(
        "gpus per replica (the issue's example)",
        {"limits": {"maxGpusPerReplica": 8}},
        {},
        {"gpus_per_replica": 16, "gpu_product": H100},
        ViolationKind.GPUS_PER_REPLICA,
        "spec.gpu",
        f"plan needs 16 × {H100} per replica; SizingPolicy p allows 8 (limits.maxGpusPerReplica)",
    ),
    ViolationCase(
        "gpu product",
        {"allowed": {"gpuProducts": ["H200", "B200"]}},
        {},
        {"gpu_product": H100},
        ViolationKind.GPU_PRODUCT,
        "spec.gpu.products",
        f"plan runs on {H100}; SizingPolicy p allows NVIDIA-B200, NVIDIA-H200 (allowed.gpuProducts)",
    ),
    ViolationCase(
        "spec asks only for products the policy refuses",
        {"allowed": {"gpuProducts": ["H200"]}},
        {"gpu": {"products": ["H100", "L40S"]}},
        {},
        ViolationKind.GPU_PRODUCT,
        "spec.gpu.products",
        "spec.gpu.products asks for H100, L40S; SizingPolicy p allows NVIDIA-H200 (allowed.gpuProducts)",
    ),
    ViolationCase(
        "pool",
        {"allowed": {"pools": ["h200-reserved"]}},
        {},
        {"pool": "h100-spot"},
        ViolationKind.POOL,
        "spec.gpu",
        "plan runs on pool h100-spot; SizingPolicy p allows h200-reserved (allowed.pools)",
    ),
    ViolationCase(
        "max model len on the plan",
        {"limits": {"maxModelLen": 32768}},
        {},
        {"max_model_len": 131072},
        ViolationKind.MAX_MODEL_LEN,
        "spec.serving.maxModelLen",
        "plan serves maxModelLen 131,072 tokens; SizingPolicy p allows 32,768 (limits.maxModelLen)",
    ),
    ViolationCase(
        "max model len stated, no plan",
        {"limits": {"maxModelLen": 32768}},
        {"serving": {"maxModelLen": 65536}},
        None,
        ViolationKind.MAX_MODEL_LEN,
        "spec.serving.maxModelLen",
        "spec.serving.maxModelLen is 65,536 tokens; SizingPolicy p allows 32,768 (limits.maxModelLen)",
    ),
    ViolationCase(
        "quantization resolved by the plan",
        {"allowed": {"quantizations": ["fp8", "none"]}},
        {},
        {"quantization": "w4a16-awq"},
        ViolationKind.QUANTIZATION,
        "spec.model.quantization",
        "plan loads weights as w4a16-awq; SizingPolicy p allows fp8, none (allowed.quantizations)",
    ),
    ViolationCase(
        "quantization stated, no plan",
        {"allowed": {"quantizations": ["fp8"]}},
        {"model": {"name": SMALL, "quantization": "none"}},
        None,
        ViolationKind.QUANTIZATION,
        "spec.model.quantization",
        "spec.model.quantization is none; SizingPolicy p allows fp8 (allowed.quantizations)",
    ),
    ViolationCase(
        "dtype",
        {"allowed": {"dtypes": ["bfloat16"]}},
        {},
        {"dtype": "float16"},
        ViolationKind.DTYPE,
        "spec.model.dtype",
        "plan computes in float16; SizingPolicy p allows bfloat16 (allowed.dtypes)",
    ),
    ViolationCase(
        "engine image set",
        {"allowed": {"engineImages": ["registry.example.com/vllm/"]}},
        {"serving": {"engine": {"image": "ghcr.io/someone/vllm:latest"}}},
        {},
        ViolationKind.ENGINE_IMAGE,
        "spec.serving.engine.image",
        "engine image ghcr.io/someone/vllm:latest is under no approved prefix; SizingPolicy p allows "
        "registry.example.com/vllm/ (allowed.engineImages)",
    ),
    ViolationCase(
        "engine image defaulted by the operator",
        {"allowed": {"engineImages": ["registry.example.com/vllm/"]}},
        {},
        {},
        ViolationKind.ENGINE_IMAGE,
        "spec.serving.engine.image",
        "engine image docker.io/vllm/vllm-openai:v0.19.0 (the default: spec.serving.engine.image is unset) is under "
        "no approved prefix; SizingPolicy p allows registry.example.com/vllm/ (allowed.engineImages)",
    ),
    ViolationCase(
        "required SLO",
        {"required": {"slo": ["ttftP95Ms"]}},
        {"slo": {"itlP95Ms": 50}},
        {},
        ViolationKind.REQUIRED_FIELD,
        "spec.slo.ttftP95Ms",
        "spec.slo.ttftP95Ms is unset; SizingPolicy p requires it (required.slo)",
    ),
    ViolationCase(
        "replicas max",
        {"limits": {"maxReplicas": 4}},
        {"replicas": {"min": 1, "max": 10}},
        {},
        ViolationKind.REPLICAS,
        "spec.replicas.max",
        "spec.replicas.max is 10; SizingPolicy p allows 4 (limits.maxReplicas)",
    ),
    ViolationCase(
        "replicas min without max",
        {"limits": {"maxReplicas": 2}},
        {"replicas": {"min": 3}},
        {},
        ViolationKind.REPLICAS,
        "spec.replicas.min",
        "spec.replicas.min is 3; SizingPolicy p allows 2 (limits.maxReplicas)",
    ),
    ViolationCase(
        "pinned parallelism",
        {"limits": {"maxGpusPerReplica": 4}},
        {"gpu": {"tensorParallelSize": 8}},
        None,
        ViolationKind.GPUS_PER_REPLICA,
        "spec.gpu.tensorParallelSize",
        "the pinned parallelism needs 8 GPUs per replica; SizingPolicy p allows 4 (limits.maxGpusPerReplica)",
    ),
]


@pytest.mark.parametrize("case", VIOLATIONS, ids=[c.id for c in VIOLATIONS])
def test_each_violation_names_policy_field_limit_and_value(case: ViolationCase) -> None:
    spec = small_spec(**case.spec)
    planned = None if case.plan is None else plan_with(**case.plan)
    decision = evaluate(spec, planned, effective(policy("p", **case.policy)))
    assert not decision.allowed
    assert [(v.kind, v.field) for v in decision.violations] == [(case.kind, case.field)]
    assert decision.violations[0].policies == ("p",)
    assert decision.message() == case.message
    assert decision.reason == case.kind.value


@pytest.mark.parametrize("case", VIOLATIONS, ids=[c.id for c in VIOLATIONS])
def test_the_same_spec_and_plan_pass_without_the_policy(case: ViolationCase) -> None:
    spec = small_spec(**case.spec)
    planned = None if case.plan is None else plan_with(**case.plan)
    assert evaluate(spec, planned, effective(policy("p"))).allowed
    assert evaluate(spec, planned, effective()) == Decision()


def test_several_violations_are_numbered_and_two_policies_are_named_together() -> None:
    e = effective(
        policy("gpu-budget", limits={"maxGpusPerReplica": 8}),
        policy("team", limits={"maxGpusPerReplica": 8, "maxReplicas": 1}),
    )
    decision = evaluate(spec_of(SMALL, replicas={"min": 2}), plan_with(gpus_per_replica=16), e)
    assert decision.message() == (
        "2 policy violations: (1) spec.replicas.min is 2; SizingPolicy team allows 1 (limits.maxReplicas); "
        f"(2) plan needs 16 × {H100} per replica; SizingPolicies gpu-budget and team allow 8 "
        "(limits.maxGpusPerReplica)"
    )


def test_operator_image_repository_counts_when_the_spec_leaves_the_image_unset() -> None:
    e = effective(policy("p", allowed={"engineImages": ["registry.example.com/"]}))
    assert evaluate(spec_of(SMALL), small_plan(), e, image_repository="registry.example.com/vllm/vllm-openai").allowed


def test_without_a_plan_the_decision_warns_that_plan_checks_were_skipped() -> None:
    decision = evaluate(spec_of(SMALL), None, effective(policy("p", limits={"maxGpusPerReplica": 1})))
    assert decision.allowed and any("without a plan" in w for w in decision.warnings)


def test_a_pinned_parallelism_over_the_limit_is_reported_once() -> None:
    spec = small_spec(gpu={"tensorParallelSize": 8})
    decision = evaluate(spec, plan_with(gpus_per_replica=8), effective(policy("p", limits={"maxGpusPerReplica": 4})))
    assert [v.field for v in decision.violations] == ["spec.gpu.tensorParallelSize"]


SPEC = {"model": {"name": SMALL}}
ADMISSION_CASES = [
    ("create", "CREATE", {"spec": SPEC}, None, True),
    ("spec changed", "UPDATE", {"spec": {**SPEC, "replicas": {"min": 2}}}, {"spec": SPEC}, True),
    ("metadata only (finalizer, labels)", "UPDATE", {"metadata": {"finalizers": ["x"]}, "spec": SPEC}, {"spec": SPEC},
     False),
    ("being deleted", "UPDATE", {"metadata": {"deletionTimestamp": "2025-06-01T00:00:00Z"}, "spec": {}},
     {"spec": SPEC}, False),
    ("delete", "DELETE", {"spec": SPEC}, {"spec": SPEC}, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "operation", "obj", "old", "judged"), ADMISSION_CASES, ids=[c[0] for c in ADMISSION_CASES]
)
def test_only_spec_changes_are_judged(
    case: str, operation: str, obj: dict[str, Any], old: dict[str, Any] | None, judged: bool
) -> None:
    assert needs_evaluation(operation, obj, old) is judged


# --- sizing inside the policy -------------------------------------------------------------------------------------


def test_sizing_picks_the_cheapest_plan_the_policy_allows() -> None:
    pools = [pool("H100", price=1.5), pool("H200", price=3.5)]
    request = SizingRequest(spec_of(BIG), facts_of(BIG), pools)
    free = plan(request, BIG)
    limit = free.gpus_per_replica - 1
    bound = plan_within_policy(request, effective(policy("gpu-budget", limits={"maxGpusPerReplica": limit})), BIG)
    assert bound.decision.allowed and bound.plan is not None
    assert bound.plan.gpus_per_replica <= limit
    assert (bound.plan.gpu_product, bound.plan.gpus_per_replica) != (free.gpu_product, free.gpus_per_replica)
    assert any(
        f"need more than {limit} GPUs per replica, which SizingPolicy gpu-budget" in r for r in bound.plan.reasons
    )


def test_when_no_plan_complies_the_closest_one_is_returned_with_the_violation() -> None:
    request = SizingRequest(spec_of(HUGE, serving={"maxModelLen": 8192}), facts_of(HUGE), [pool("H100")])
    smallest = min(c.shape.gpus for c in search(request).candidates)
    result = plan_within_policy(request, effective(policy("gpu-budget", limits={"maxGpusPerReplica": 8})), HUGE)
    assert result.plan is not None and result.plan.gpus_per_replica == smallest > 8
    assert result.decision.message() == (
        f"plan needs {smallest} × {H100} per replica; SizingPolicy gpu-budget allows 8 (limits.maxGpusPerReplica)"
    )


def test_allowed_products_restrict_the_pools_sizing_sees() -> None:
    pools = [pool("H100", price=1.0), pool("H200", price=9.0)]
    e = effective(policy("p", allowed={"gpuProducts": ["H200"]}))
    assert [p.name for p in restrict_pools(pools, e)] == ["h200"]
    result = plan_within_policy(SizingRequest(spec_of(SMALL), facts_of(SMALL), pools), e, SMALL)
    assert result.plan is not None and result.plan.gpu_product == H200 and result.decision.allowed
    assert any("pools limited to h200 by SizingPolicy p" in r for r in result.plan.reasons)


def test_no_allowed_pool_is_a_violation_without_a_plan() -> None:
    e = effective(policy("p", allowed={"pools": ["b200-reserved"]}))
    result = plan_within_policy(SizingRequest(spec_of(SMALL), facts_of(SMALL), [pool("H100")]), e, SMALL)
    assert result.plan is None
    assert result.decision.violations[0].kind == ViolationKind.NO_ALLOWED_POOL
    assert result.decision.violations[0].one_line() == (
        f"no known GPU pool is allowed; known: h100 ({H100}); SizingPolicy p allows pools b200-reserved (allowed.pools)"
    )


def test_with_no_pool_known_at_all_no_policy_is_blamed() -> None:
    """An operator that has not yet seen a GPU node (just started, its node index still filling) knows no pool:
    sizing's own error, not a policy violation naming no policy (this raised IndexError in the webhook)."""
    with pytest.raises(SizingError):
        plan_within_policy(SizingRequest(spec_of(SMALL), facts_of(SMALL), []), effective(), SMALL)
    with pytest.raises(SizingError):
        plan_within_policy(
            SizingRequest(spec_of(SMALL), facts_of(SMALL), []), effective(policy("p", allowed={"pools": ["a"]})), SMALL
        )


def test_a_model_no_allowed_pool_can_hold_raises_the_sizing_error() -> None:
    e = effective(policy("p", allowed={"gpuProducts": ["L40S"]}))
    request = SizingRequest(spec_of(HUGE), facts_of(HUGE), [pool("L40S", per_node=1), pool("H200")])
    with pytest.raises(SizingError):
        plan_within_policy(request, e, HUGE)


def test_declared_pools_join_the_known_ones_and_replace_a_namesake() -> None:
    e = effective(
        policy("p", pools=[{"name": "h100", "product": "H100", "gpusPerNode": 4, "pricePerGpuHour": 2.0},
                           {"name": "b200", "product": "B200", "gpusPerNode": 8}])
    )  # fmt: skip
    merged = with_declared([pool("H100"), pool("L40S")], e)
    assert [(p.name, p.gpus_per_node, p.price_per_gpu_hour) for p in merged] == [
        ("b200", 8, None),
        ("h100", 4, 2.0),
        ("l40s", 8, None),
    ]


# --- quota ------------------------------------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
QUOTA = effective(policy("gpu-budget", limits={"namespaceQuota": [{"product": "H100", "maxGpus": 8}]}))


def llmd(name: str, gpus: int | None, running: int, generation: int = 1, **spec: Any) -> LLMDeployment:
    status: dict[str, Any] = {"observedGeneration": generation, "replicas": running}
    if gpus is not None:
        status["plan"] = plan_with(gpus_per_replica=gpus, replicas=running).to_wire()
    meta = {"name": name, "uid": f"uid-{name}", "generation": generation}
    return LLMDeployment.model_validate(
        {"metadata": meta, "spec": {"model": {"name": SMALL}, **spec}, "status": status}
    )


def test_charge_counts_gpus_per_replica_times_the_larger_of_running_and_wanted_replicas() -> None:
    assert charge_of(llmd("a", 2, 3, replicas={"min": 1, "max": 4})) == GpuCharge("a", "uid-a", 1, H100, 6, 1)
    scaling_down = llmd("b", 2, 3, replicas={"min": 1, "max": 4, "desired": 1})
    assert charge_of(scaling_down).gpus == 6
    assert charge_of(llmd("c", None, 0)) == GpuCharge("c", "uid-c", 1, None, 0, 1)


def test_usage_excludes_the_object_being_admitted_and_merges_reservations() -> None:
    charges = [GpuCharge("a", "u", 1, H100, 4), GpuCharge("b", "u", 1, H200, 8), GpuCharge("c", "u", 1, None, 0)]
    reservations = [
        Reservation("a", "u", 2, H100, 6, NOW),  # same object, same product: the larger counts
        Reservation("c", "u", 1, "H100", 2, NOW),  # not sized yet: the reservation counts
        Reservation("d", "u", 1, H200, 8, NOW),
    ]
    assert namespace_usage(charges, reservations) == {H100: 8, H200: 16}
    assert namespace_usage(charges, reservations, excluding="b") == {H100: 8, H200: 8}


QUOTA_CASES = [
    # (id, used H100 GPUs elsewhere, spec replicas, plan gpus per replica, plan replicas, allowed, replicas, message)
    ("fits", 4, {"min": 1, "max": 3}, 2, 2, True, 2, ""),
    ("exactly fills", 6, {"min": 1}, 2, 1, True, 1, ""),
    ("minimum does not fit", 8, {"min": 1}, 1, 1, False, 0,
     f"namespace team-a would hold 9 {H100} (8 held by other LLMDeployments + 1 replica(s) × 1 × {H100}); "
     "SizingPolicy gpu-budget allows 8 (limits.namespaceQuota)"),
    ("fewer than planned fit", 4, {"min": 1, "max": 4}, 2, 3, True, 2,
     "namespace quota leaves room for 2 of the 3 replicas planned"),
    ("desired replicas count", 0, {"min": 1, "max": 8, "desired": 5}, 2, 1, True, 4, "room for 4 of the 5"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "used", "replicas", "gpus", "planned", "allowed", "fit", "message"),
    QUOTA_CASES,
    ids=[c[0] for c in QUOTA_CASES],
)
def test_quota(
    case: str, used: int, replicas: dict[str, int], gpus: int, planned: int, allowed: bool, fit: int, message: str
) -> None:
    spec = spec_of(SMALL, replicas=replicas)
    check = check_quota("team-a", spec, plan_with(gpus_per_replica=gpus, replicas=planned), QUOTA, {H100: used})
    assert check.decision.allowed is allowed
    assert (check.replicas, check.gpus) == (fit, fit * gpus)
    text = check.decision.message() if not allowed else "; ".join(check.decision.warnings)
    assert message in text if message else text == ""


def test_quota_on_another_product_does_not_count_and_all_products_quota_does() -> None:
    spec = spec_of(SMALL)
    on_h100 = plan_with(gpus_per_replica=4, gpu_product=H100)
    h200_only = effective(policy("p", limits={"namespaceQuota": [{"product": "H200", "maxGpus": 0}]}))
    assert check_quota("ns", spec, on_h100, h200_only, {H200: 100}).decision.allowed
    total = effective(policy("p", limits={"namespaceQuota": [{"maxGpus": 10}]}))
    check = check_quota("ns", spec, on_h100, total, {H200: 7})
    assert not check.decision.allowed and "GPUs of any product" in check.decision.message()


RESERVED = NOW - timedelta(seconds=10)
EXPIRED = NOW - timedelta(seconds=31)  # past RESERVATION_TTL


def charge(uid: str, generation: int, observed: int) -> GpuCharge:
    """An object named a in the cache: its uid, metadata.generation and status.observedGeneration."""
    return GpuCharge("a", uid, observed, H100 if observed else None, 2 if observed else 0, generation)


@pytest.mark.parametrize(
    ("case", "cached", "reserved_at", "kept"),
    [
        ("no object yet, recent", None, RESERVED, True),
        ("no object ever came (a forged review)", None, EXPIRED, False),
        ("backed, not sized yet", charge("uid-a", 2, 1), EXPIRED, True),
        ("backed, sized from the reserved generation", charge("uid-a", 2, 2), RESERVED, False),
        ("another object of that name, recent", charge("uid-old", 5, 5), RESERVED, True),
        ("another object of that name, past the TTL", charge("uid-old", 5, 5), EXPIRED, False),
        # A forged review naming a real object with a generation it does not have is not backed by it: before,
        # a generation above the object's own kept the reservation for as long as the object lived.
        ("forged generation of a real object, past the TTL", charge("uid-a", 1, 1), EXPIRED, False),
    ],
)
def test_reservations_live_until_superseded_or_unbacked_past_the_ttl(
    case: str, cached: GpuCharge | None, reserved_at: datetime, kept: bool
) -> None:
    reservation = Reservation("a", "uid-a", 2, H100, 4, reserved_at)
    charges = [cached] if cached else []
    assert live_reservations([reservation], charges, NOW) == ((reservation,) if kept else ())


def _request(name: str, gpus: int, uid: str | None = None) -> AdmissionRequest:
    return AdmissionRequest("team-a", name, uid or f"uid-{name}", 1, spec_of(SMALL), plan_with(gpus_per_replica=gpus))


def test_admission_counts_real_objects_and_live_reservations() -> None:
    real = GpuCharge("sized", "uid-sized", 1, H100, 4, 1)
    live = Reservation("pending", "uid-pending", 1, H100, 2, RESERVED)
    stale = Reservation("forged", "uid-forged", 1, H100, 8, EXPIRED)
    outcome = admit(_request("new", 2), QUOTA, [real], [live, stale], NOW)
    assert outcome.check.decision.allowed  # 4 real + 2 reserved + 2 asked = 8; the stale 8 no longer count
    assert outcome.reservation == Reservation("new", "uid-new", 1, H100, 2, NOW)
    assert not admit(_request("new", 4), QUOTA, [real], [live], NOW).check.decision.allowed


def test_a_reservation_under_a_real_name_but_another_uid_cannot_lower_the_real_one() -> None:
    real = Reservation("a", "uid-a", 1, H100, 6, RESERVED)
    forged = Reservation("a", "uid-forged", 1, H100, 1, RESERVED)
    assert namespace_usage([], [real, forged]) == {H100: 6}


def test_no_quota_on_the_product_reserves_nothing() -> None:
    outcome = admit(_request("a", 2), effective(policy("p")), [], (), NOW)
    assert outcome.check.decision.allowed and outcome.reservation is None


# --- replica bounds -------------------------------------------------------------------------------------------------


def test_replica_bounds_take_the_tightest_of_spec_policy_and_quota() -> None:
    spec = spec_of(SMALL, replicas={"min": 1, "max": 10})
    e = effective(
        policy("a", limits={"maxReplicas": 6}),
        policy("b", limits={"namespaceQuota": [{"product": "H100", "maxGpus": 16}]}),
    )
    two_gpus = plan_with(gpus_per_replica=2)
    assert replica_bounds(spec, two_gpus, e).upper == 6
    bounds = replica_bounds(spec, two_gpus, e, {H100: 10})
    assert (bounds.lower, bounds.upper) == (1, 3)
    assert bounds.reasons == (
        "limits.maxReplicas 6 from SizingPolicy a",
        f"namespace quota of 16 {H100} from SizingPolicy b leaves room for 3 replica(s) of 2 GPUs",
    )
    assert replica_bounds(spec, two_gpus, e, {H100: 16}).lower == 0


@pytest.mark.parametrize(
    ("recommended", "current", "expected"),
    [
        (5, 2, 4),  # scale-up stops at the bound
        (3, 2, 3),  # within bounds
        (8, 6, 6),  # above the bound already (policy tightened): untouched, no scale-up
        (1, 6, 2),  # scale-down stops at the lower bound
        (3, 6, 3),  # scale-down below a tightened upper bound is allowed
        (0, 1, 2),  # below the lower bound: back to it
    ],
)
def test_bound_recommendation_never_scales_up_past_the_bound_nor_removes_running_replicas(
    recommended: int, current: int, expected: int
) -> None:
    bounds = replica_bounds(spec_of(SMALL, replicas={"min": 2, "max": 10}), small_plan(),
                            effective(policy("p", limits={"maxReplicas": 4})))  # fmt: skip
    assert bound_recommendation(recommended, current, bounds) == expected


# --- policy validity, explanation and the CRD -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"allowed": {"gpuProducts": ["H9000"]}}, "allowed.gpuProducts: unknown GPU product 'H9000'"),
        ({"pools": [{"name": "x", "product": "H9000", "gpusPerNode": 8}]}, "pools[x].product: unknown GPU product"),
        ({"limits": {"namespaceQuota": [{"product": "H9000", "maxGpus": 1}]}}, "limits.namespaceQuota.product"),
        ({"defaults": {"engine": {"version": "0.5.0"}}}, "defaults.engine.version: vLLM 0.5.0 predates"),
        (
            {
                "allowed": {"engineImages": ["registry.example.com/"]},
                "defaults": {"engine": {"imageRepository": "v/v"}},
            },
            "defaults.engine.imageRepository v/v is under none of allowed.engineImages",
        ),
        (
            {"allowed": {"gpuProducts": ["H200"], "pools": ["h100"]},
             "pools": [{"name": "h100", "product": "H100", "gpusPerNode": 8}]},
            "allowed.pools: h100 offers H100, which allowed.gpuProducts does not list",
        ),
    ],
)  # fmt: skip
def test_policy_problems(spec: dict[str, Any], problem: str) -> None:
    problems = policy_problems(SizingPolicySpec.model_validate(spec))
    assert len(problems) == 1 and problem in problems[0]


def test_examples_are_sound_policies() -> None:
    paths = sorted((REPO / "examples" / "policies").glob("*.yaml"))
    assert paths
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "SizingPolicy":
                assert policy_problems(SizingPolicy.model_validate(doc).spec) == [], path


def test_explain_names_the_source_of_every_value() -> None:
    e = effective(
        policy("gpu-budget", limits={"maxGpusPerReplica": 8, "namespaceQuota": [{"product": "H200", "maxGpus": 16}]}),
        policy("images", allowed={"engineImages": ["registry.example.com/vllm/"]}, required={"slo": ["ttftP95Ms"]}),
    )
    lines = explain_lines(e, {"team": "ml"})
    assert lines[:2] == ["namespace team-a (labels: team=ml)", "selected by SizingPolicy gpu-budget, images"]
    text = "\n".join(lines)
    for expected in (
        "limits.maxGpusPerReplica",
        "8  from gpu-budget",
        "limits.namespaceQuota[NVIDIA-H200].maxGpus",
        "16  from gpu-budget",
        "registry.example.com/vllm/  from images",
        "required.slo.ttftP95Ms",
    ):
        assert expected in text
    data = explain_dict(e)
    assert data["effective"]["limits.maxGpusPerReplica"] == {"value": 8, "from": ["gpu-budget"]}
    assert explain_lines(effective(), None)[-1].startswith("no SizingPolicy selects this namespace")


def test_sizingpolicy_crd_is_cluster_scoped_with_useful_columns() -> None:
    crd = yaml.safe_load((REPO / "crds" / "rightsizer.dev_sizingpolicies.yaml").read_text())
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["shortNames"] == ["sp"]
    version = crd["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Products", "Max-GPUs", "Max-Replicas", "Accepted", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert set(spec) == {"namespaceSelector", "pools", "allowed", "limits", "required", "defaults"}
    requirement = spec["namespaceSelector"]["properties"]["matchExpressions"]["items"]
    assert requirement["x-kubernetes-validations"][0]["fieldPath"] == ".values"
    assert (
        version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"][
            "x-kubernetes-list-type"
        ]
        == "map"
    )


def test_weight_formats_match_what_plans_report() -> None:
    # One enum for the resolved format (the model layer sizes with the API's WeightFormat); the spec's Quantization
    # is the same list plus auto, which reads the checkpoint.
    from rightsizer.api.v1alpha1.llmdeployment import Quantization
    from rightsizer.api.v1alpha1.sizingpolicy import WeightFormat
    from rightsizer.model.config import WeightFormat as SizedFormat

    assert SizedFormat is WeightFormat
    assert [q.value for q in Quantization] == ["auto", *(f.value for f in WeightFormat)]
