"""SizingPolicy: what a platform team allows the LLMDeployments of the namespaces it selects.

Cluster-scoped. Every policy whose namespaceSelector matches a namespace applies there; several combine to the most
restrictive (rightsizer.policy.combine), and every limit of the result names the policy it came from.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, JsonValue, StringConstraints, model_validator

from rightsizer.api.v1alpha1.common import Condition, GpuPoolSpec, StatusModel, WireModel
from rightsizer.api.v1alpha1.llmdeployment import SLO
from rightsizer.facts.gpus import EXAMPLE_ALIASES, EXAMPLE_GFD_NAME


class SelectorOperator(StrEnum):
    """metav1.LabelSelectorOperator."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_VALUES_RULE: dict[str, JsonValue] = {
    "rule": "(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)",
    "message": "In and NotIn need at least one value; Exists and DoesNotExist take none",
    "fieldPath": ".values",
}


class LabelSelectorRequirement(WireModel):
    """One metav1.LabelSelectorRequirement: a key, an operator and (for In/NotIn) values."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_VALUES_RULE]})

    key: str = Field(description="The label key the requirement applies to.", min_length=1)
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(
        default_factory=list, description="For In and NotIn: the values (at least one); empty for Exists/DoesNotExist."
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values and not self.values:
            raise ValueError(f"operator {self.operator.value} needs at least one value")
        if not needs_values and self.values:
            raise ValueError(f"operator {self.operator.value} takes no values")
        return self


class LabelSelector(WireModel):
    """A metav1.LabelSelector. Every requirement must hold; an empty selector selects every namespace."""

    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels the namespace must carry with exactly these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Set-based requirements on the namespace's labels."
    )


class WeightFormat(StrEnum):
    """A resolved weight format, as status.plan.quantization reports it (spec.model.quantization's, without auto)."""

    NONE = "none"
    FP8 = "fp8"
    W8A8 = "w8a8"
    W4A16_GPTQ = "w4a16-gptq"
    W4A16_AWQ = "w4a16-awq"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"


class ComputeDType(StrEnum):
    """A resolved compute dtype, as status.plan.dtype reports it."""

    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class SLOField(StrEnum):
    """An SLO field of LLMDeployment spec.slo."""

    TTFT_P95_MS = "ttftP95Ms"
    ITL_P95_MS = "itlP95Ms"


# A Secret's or PersistentVolumeClaim's name is a DNS-1123 subdomain (at most 253 characters of a-z, 0-9, '-' and
# '.'); a name pattern is one with `*` wildcards. Bounded, like the lists holding them, so matching costs little.
NAME_PATTERN_MAX_LENGTH = 253
NAME_PATTERNS_MAX_ITEMS = 32
NamePattern = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9.*-]+$", min_length=1, max_length=NAME_PATTERN_MAX_LENGTH)
]
_NAME_PATTERN_SYNTAX = "`*` matches any run of characters (none included), every other character itself"


class PolicyAllowed(WireModel):
    """What may be used. An empty list allows everything of its kind; a listed set allows only its members."""

    gpu_products: list[str] = Field(
        default_factory=list,
        description=f"GPU products plans may run on (GPU Feature Discovery names such as {EXAMPLE_GFD_NAME}, or "
        f"aliases {EXAMPLE_ALIASES}). Empty: any product.",
    )
    pools: list[str] = Field(
        default_factory=list,
        description="GPU pools plans may run on, by name (declared here or discovered by the operator). Empty: any.",
    )
    quantizations: list[WeightFormat] = Field(
        default_factory=list,
        description="Weight formats a plan may load, as resolved from spec.model.quantization and the checkpoint "
        "(none means unquantized). Empty: any.",
    )
    dtypes: list[ComputeDType] = Field(
        default_factory=list, description="Compute dtypes a plan may use, as vLLM resolves them. Empty: any."
    )
    engine_images: list[str] = Field(
        default_factory=list,
        description="Registry prefixes the vLLM image must start with, matched at a path boundary after Docker "
        "normalisation (vllm/ means docker.io/vllm/), e.g. registry.example.com/vllm/. Empty: any image.",
    )
    overflow: bool | None = Field(
        default=None,
        description="false: replicas the primary pool cannot schedule stay Pending instead of overflowing onto the "
        "next allowed pool (spec.placement.overflow). Unset or true: each LLMDeployment decides.",
    )
    trust_remote_code: bool | None = Field(
        default=None,
        description="true: spec.serving.engine.extraArgs may pass --trust-remote-code, which makes vLLM run Python "
        "code from the model's repository in the pod. It is refused unless a selecting policy sets true and none "
        "sets false (in a namespace no policy selects, too).",
    )
    hf_token_secrets: list[NamePattern] = Field(
        default_factory=list,
        max_length=NAME_PATTERNS_MAX_ITEMS,
        description="Secrets spec.serving.hfTokenSecretRef may name (mounted into the vLLM pods as HF_TOKEN), as "
        f"name patterns: {_NAME_PATTERN_SYNTAX}, e.g. hf-token or hf-*. Empty: any Secret of the namespace.",
    )
    model_cache_claims: list[NamePattern] = Field(
        default_factory=list,
        max_length=NAME_PATTERNS_MAX_ITEMS,
        description="PersistentVolumeClaims spec.serving.modelCacheClaim may name (mounted writable into the vLLM "
        f"pods), as name patterns: {_NAME_PATTERN_SYNTAX}, e.g. model-cache-*. Empty: any claim of the namespace.",
    )


class NamespaceQuota(WireModel):
    """GPUs all LLMDeployments of one namespace may hold together."""

    product: str | None = Field(
        default=None,
        description="GPU product the quota counts (GPU Feature Discovery name or alias); unset: every product "
        "together.",
    )
    max_gpus: int = Field(description="Most GPUs (GPUs per replica × replicas, summed) the namespace may hold.", ge=0)


class PolicyLimits(WireModel):
    """Upper bounds. Unset: no bound."""

    max_gpus_per_replica: int | None = Field(
        default=None, description="Most GPUs one replica may use (tensorParallelSize × pipelineParallelSize).", ge=1
    )
    max_replicas: int | None = Field(
        default=None, description="Most replicas one LLMDeployment may ask for (spec.replicas.max).", ge=0
    )
    max_model_len: int | None = Field(
        default=None, description="Longest context (vLLM --max-model-len) a plan may serve, in tokens.", ge=16
    )
    namespace_quota: list[NamespaceQuota] = Field(
        default_factory=list,
        description="GPUs per namespace, counted over its LLMDeployments (GPUs per replica × replicas).",
    )

    @model_validator(mode="after")
    def _one_quota_per_product(self) -> PolicyLimits:
        products = [q.product for q in self.namespace_quota]
        duplicates = sorted({str(p) for p in products if products.count(p) > 1})
        if duplicates:
            raise ValueError(f"namespaceQuota lists {', '.join(duplicates)} more than once; keep one entry each")
        return self


class PolicyRequired(WireModel):
    """Fields every LLMDeployment must set (after this policy's defaults are applied)."""

    slo: list[SLOField] = Field(default_factory=list, description="SLO fields spec.slo must set.")


class EngineDefaults(WireModel):
    """vLLM engine defaults."""

    version: str | None = Field(
        default=None,
        description="vLLM release used when an LLMDeployment sets neither spec.serving.engine.version nor image.",
        pattern=r"^\d+\.\d+(\.\d+)?$",
    )
    image_repository: str | None = Field(
        default=None,
        description="Image repository used when spec.serving.engine.image is unset; the tag is v<version>, e.g. "
        "registry.example.com/vllm/vllm-openai gives registry.example.com/vllm/vllm-openai:v0.19.0.",
        min_length=1,
    )


class PolicyDefaults(WireModel):
    """Values filled into an LLMDeployment that leaves them unset (by the defaulting webhook and offline plans)."""

    engine: EngineDefaults = Field(default_factory=EngineDefaults, description="vLLM engine defaults.")
    slo: SLO = Field(default_factory=SLO, description="SLO targets for fields spec.slo leaves unset.")
    gpu_memory_utilization: float | None = Field(
        default=None, description="spec.serving.gpuMemoryUtilization when unset.", gt=0, le=0.99
    )


class SizingPolicySpec(WireModel):
    """Which namespaces the policy applies to; the pools it declares; what it allows, limits, requires, defaults."""

    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Namespaces the policy applies to, by label (kubernetes.io/metadata.name is the namespace's "
        "name). Empty: every namespace.",
    )
    pools: list[GpuPoolSpec] = Field(
        default_factory=list,
        description="GPU pools offered to the selected namespaces, with their shape and price (pools that scale "
        "from zero have no node to discover).",
    )
    allowed: PolicyAllowed = Field(default_factory=PolicyAllowed, description="What plans may use.")
    limits: PolicyLimits = Field(default_factory=PolicyLimits, description="Upper bounds.")
    required: PolicyRequired = Field(default_factory=PolicyRequired, description="Fields that must be set.")
    defaults: PolicyDefaults = Field(default_factory=PolicyDefaults, description="Values filled in when unset.")

    @model_validator(mode="after")
    def _pool_names_unique(self) -> SizingPolicySpec:
        names = [p.name for p in self.pools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pools declares {', '.join(duplicates)} more than once; pool names must be unique")
        return self


class SizingPolicyStatus(StatusModel):
    """What the operator observed about the policy."""

    observed_generation: int | None = Field(default=None, description="metadata.generation last checked.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Accepted: the policy names only known GPU products and its defaults satisfy its own limits.",
    )


class SizingPolicy(WireModel):
    """A whole SizingPolicy object (metadata kept as a plain mapping)."""

    model_config = WireModel.model_config | {"extra": "ignore"}

    api_version: str = Field(default="rightsizer.dev/v1alpha1")
    kind: str = Field(default="SizingPolicy")
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SizingPolicySpec = Field(default_factory=SizingPolicySpec)
    status: SizingPolicyStatus | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))
