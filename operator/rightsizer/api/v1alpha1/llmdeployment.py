"""LLMDeployment: one model served by vLLM, sized, placed and scaled by rightsizer."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from rightsizer.api.v1alpha1.common import Condition, StatusModel, WireModel
from rightsizer.api.v1alpha1.cost import CostStatus
from rightsizer.api.v1alpha1.plan import Plan, PoolPlan
from rightsizer.facts.gpus import EXAMPLE_ALIASES, EXAMPLE_GFD_NAME

INT32_MAX = 2**31 - 1  # bounds the batch pins, so an absurd value is refused by the API server before any sizing

DEFAULT_ENGINE_VERSION = "0.19.0"
"""The vLLM release whose memory accounting is calibrated best (see docs/sizing.md)."""


class Quantization(StrEnum):
    """Weight format. `auto` reads the checkpoint's quantization_config; `fp8` on an unquantized checkpoint
    quantizes online (vLLM --quantization fp8); the others need a checkpoint already in that format."""

    AUTO = "auto"
    NONE = "none"
    FP8 = "fp8"
    W8A8 = "w8a8"
    W4A16_GPTQ = "w4a16-gptq"
    W4A16_AWQ = "w4a16-awq"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"


class ModelDType(StrEnum):
    """Compute dtype (vLLM --dtype). `auto` follows the checkpoint, downcasting float32 to bfloat16 as vLLM does."""

    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class KVCacheDType(StrEnum):
    """KV cache element type (vLLM --kv-cache-dtype). fp8 halves KV memory per token."""

    AUTO = "auto"
    FP8 = "fp8"


class ConfigMapKeyRef(WireModel):
    """A key of a ConfigMap in the LLMDeployment's namespace."""

    name: str = Field(description="ConfigMap name.", min_length=1)
    key: str = Field(default="config.json", description="Key holding the model's config.json.")


class SecretKeyRef(WireModel):
    """A key of a Secret in the LLMDeployment's namespace."""

    name: str = Field(description="Secret name.", min_length=1)
    key: str = Field(default="token", description="Key holding the value.")


class ModelSource(WireModel):
    """Which model to serve and where its architecture facts (config.json) come from."""

    name: str = Field(
        description="Hugging Face repository id, e.g. meta-llama/Llama-3.1-8B-Instruct; vLLM loads it by this name.",
        min_length=1,
    )
    revision: str | None = Field(default=None, description="Branch, tag or commit of the repository.")
    config: dict[str, Any] | None = Field(
        default=None,
        description="Inline config.json content. Overrides every other source of architecture facts.",
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="A ConfigMap key holding config.json; used when `config` is not set."
    )
    quantization: Quantization = Field(default=Quantization.AUTO, description="Weight format.")
    dtype: ModelDType = Field(default=ModelDType.AUTO, description="Compute dtype.")
    served_name: str | None = Field(
        default=None, description="Model name clients send in requests (vLLM --served-model-name); default: `name`."
    )


class Engine(WireModel):
    """The vLLM container."""

    version: str = Field(
        default=DEFAULT_ENGINE_VERSION,
        description="vLLM release, e.g. 0.19.0. Selects the memory-accounting profile and the default image.",
        pattern=r"^\d+\.\d+(\.\d+)?$",
    )
    image: str | None = Field(default=None, description="Container image; default vllm/vllm-openai:v<version>.")
    extra_args: list[str] = Field(
        default_factory=list,
        description="Arguments appended to the computed ones, checked against the release's own option table: "
        "flags rightsizer computes (sizing, parallelism, quantization, network, model identity) and flags the "
        "release does not know are refused, each naming the spec field to use instead.",
    )


MAX_ITEMS_PER_PROMPT = 1024  # bounds limitMmPerPrompt (vLLM's default is 999 per modality)


class MultimodalLimits(WireModel):
    """Items of each modality one prompt may carry (vLLM --limit-mm-per-prompt). A modality left out keeps vLLM's
    default (999); 0 turns it off. With every modality the model serves at 0 the model runs text-only: its encoder is
    not profiled, and on the releases whose model file allows it not even loaded (docs/sizing.md §7)."""

    image: int | None = Field(default=None, description="Images per prompt.", ge=0, le=MAX_ITEMS_PER_PROMPT)
    video: int | None = Field(default=None, description="Videos per prompt.", ge=0, le=MAX_ITEMS_PER_PROMPT)
    audio: int | None = Field(default=None, description="Audio clips per prompt.", ge=0, le=MAX_ITEMS_PER_PROMPT)

    def pinned(self) -> tuple[tuple[str, int], ...]:
        """(modality, items) for each modality set, in a fixed order."""
        return tuple(
            (m, n) for m, n in (("image", self.image), ("video", self.video), ("audio", self.audio)) if n is not None
        )


class Serving(WireModel):
    """How vLLM serves: context length, KV cache, memory budget, engine."""

    max_model_len: int | None = Field(
        default=None, description="Longest prompt + output in tokens; default: the model's own default.", ge=16
    )
    kv_cache_dtype: KVCacheDType = Field(default=KVCacheDType.AUTO, description="KV cache element type.")
    gpu_memory_utilization: float | None = Field(
        default=None,
        description="Share of each GPU's memory vLLM may use; default: the release's default.",
        gt=0,
        le=0.99,
    )
    max_num_seqs: int | None = Field(
        default=None,
        description="Pin vLLM --max-num-seqs (sequences one replica runs at once). Default: the largest batch that "
        "memory, the KV cache and spec.slo allow, at most the release's default for the GPU.",
        ge=1,
        le=INT32_MAX,
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        description="Pin vLLM --max-num-batched-tokens (tokens one scheduler step may process). Default: the "
        "release's default for the GPU, lowered only when the activation peak would not fit otherwise.",
        ge=1,
        le=INT32_MAX,
    )
    expert_parallel: bool | None = Field(
        default=None,
        description="Pin vLLM --enable-expert-parallel for a mixture-of-experts model: true puts whole experts on "
        "each GPU (EP = TP), false keeps every expert split over TP. Default: the search adds it only where vLLM "
        "refuses the TP degree without it.",
    )
    limit_mm_per_prompt: MultimodalLimits | None = Field(
        default=None,
        description="Pin vLLM --limit-mm-per-prompt for a multimodal model: items of each modality per prompt. "
        "All at 0: text-only, sized without the encoder where vLLM skips loading it.",
    )
    engine: Engine = Field(default_factory=Engine, description="The vLLM container.")
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret with a Hugging Face token, for gated models (HF_TOKEN in the pod)."
    )
    model_cache_claim: str | None = Field(
        default=None, description="PersistentVolumeClaim mounted as the Hugging Face cache, to skip re-downloads."
    )


class Workload(WireModel):
    """The traffic the deployment must serve. Sizes max-num-seqs and replica capacity."""

    input_tokens: int = Field(default=1024, description="Typical prompt length in tokens.", ge=1)
    output_tokens: int = Field(default=256, description="Typical output length in tokens.", ge=1)
    concurrency: int | None = Field(default=None, description="Peak concurrent requests across all replicas.", ge=1)
    request_rate: float | None = Field(default=None, description="Peak requests per second across all replicas.", gt=0)


class SLO(WireModel):
    """Latency targets, at the 95th percentile."""

    ttft_p95_ms: float | None = Field(default=None, alias="ttftP95Ms", description="Time to first token.", gt=0)
    itl_p95_ms: float | None = Field(default=None, alias="itlP95Ms", description="Inter-token latency.", gt=0)


class GpuRequirements(WireModel):
    """Which GPUs may serve, and optional parallelism pins."""

    products: list[str] = Field(
        default_factory=list,
        description="Allowed GPU products in order of preference (GPU Feature Discovery names such as "
        f"{EXAMPLE_GFD_NAME}, or aliases {EXAMPLE_ALIASES}). Empty: any pool the operator knows.",
    )
    tensor_parallel_size: int | None = Field(default=None, description="Pin vLLM --tensor-parallel-size.", ge=1)
    pipeline_parallel_size: int | None = Field(default=None, description="Pin vLLM --pipeline-parallel-size.", ge=1)


class Replicas(WireModel):
    """Replica bounds. `desired` is what /scale reads and writes (kubectl scale, the autoscaler, HPA or KEDA)."""

    min: int = Field(default=1, description="Fewest replicas.", ge=0)
    max: int | None = Field(default=None, description="Most replicas; default: min.", ge=0)
    desired: int | None = Field(
        default=None, description="Replicas wanted now, kept within min..max. Written through the scale subresource."
    )

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> Replicas:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"replicas.max ({self.max}) is below replicas.min ({self.min}): raise max or lower min")
        return self

    @property
    def upper(self) -> int:
        return self.min if self.max is None else self.max


MAX_APPLY_INTERVAL_SECONDS = 7 * 86400  # a week


class AutoscalingMode(StrEnum):
    """Whether the autoscaler's decisions change replicas.desired or are only recorded."""

    ACT = "Act"
    RECOMMEND = "Recommend"


class Autoscaling(WireModel):
    """The SLO autoscaler. On when an SLO is set and replicas.max > replicas.min, unless disabled."""

    mode: AutoscalingMode = Field(
        default=AutoscalingMode.ACT,
        description="Act: write each decision to replicas.desired (the scale subresource). Recommend: compute and "
        "record decisions (status.autoscaling, Events, metrics) without scaling, to watch beside an HPA or KEDA.",
    )

    enabled: bool = Field(default=True, description="Let rightsizer set replicas.desired from latency metrics.")
    scale_up_stabilization_seconds: int = Field(
        default=0, description="Look-back before scaling up (the highest recommendation in the window wins).", ge=0
    )
    scale_down_stabilization_seconds: int = Field(
        default=300,
        description="Look-back before scaling down (the highest recommendation in the window wins).",
        ge=0,
    )
    scale_to_zero: bool = Field(
        default=False, description="Allow 0 replicas when idle (requests then wait for a cold start)."
    )
    apply_recommendations: bool = Field(
        default=False,
        description="Re-size with the speed this deployment's own metrics measured (status.recommendation): "
        "--max-num-seqs, the replica need and, if it changes, the parallelism or pool. Changing the engine's "
        "arguments restarts the pods, so it happens at most once per applyIntervalSeconds, with an Event.",
    )
    apply_interval_seconds: int = Field(
        default=3600,
        description="Fewest seconds between two applied recommendations (each restarts the pods).",
        ge=300,
        le=MAX_APPLY_INTERVAL_SECONDS,
    )


class OverflowMode(StrEnum):
    """Whether replicas the primary pool cannot schedule may run on the next allowed pool."""

    ALLOWED = "Allowed"
    NEVER = "Never"


MAX_PLACEMENT_SECONDS = 86400  # a day: bounds the grace periods, which are tenant input


class Placement(WireModel):
    """Where replicas run when the primary pool (status.plan.pool) is full: docs/operator.md, Placement."""

    overflow: OverflowMode | None = Field(
        default=None,
        description="Allowed: replicas the primary pool cannot schedule run on the next pool in status.pools, "
        "sized for its GPU. Never: they stay Pending. Default: Allowed when spec.gpu.products allows more than one "
        "product (or is empty), Never otherwise. A SizingPolicy (allowed.overflow: false) can forbid it.",
    )
    overflow_after_seconds: int = Field(
        default=120,
        description="How long a replica of the primary pool stays Pending for lack of room (the scheduler's "
        "Insufficient reason, cordoned nodes, or a declared pool at its node limit) before it overflows.",
        ge=0,
        le=MAX_PLACEMENT_SECONDS,
    )
    return_after_seconds: int = Field(
        default=300,
        description="How long replicas back on the primary pool must have been Ready before the overflow pool's "
        "replicas are removed (hysteresis: a flapping node does not shuffle pods).",
        ge=0,
        le=MAX_PLACEMENT_SECONDS,
    )

    def overflow_allowed(self, products: list[str]) -> bool:
        if self.overflow is not None:
            return self.overflow is OverflowMode.ALLOWED
        return len(products) != 1


class LLMDeploymentSpec(WireModel):
    """What to serve and the constraints it must meet; rightsizer computes the rest."""

    model: ModelSource
    serving: Serving = Field(default_factory=Serving)
    workload: Workload = Field(default_factory=Workload)
    slo: SLO = Field(default_factory=SLO)
    gpu: GpuRequirements = Field(default_factory=GpuRequirements)
    replicas: Replicas = Field(default_factory=Replicas)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    placement: Placement = Field(default_factory=Placement)


class ScalingDecision(StatusModel):
    """One autoscaler decision, for status.autoscaling.history."""

    time: str = Field(description="RFC 3339 time of the decision.")
    from_replicas: int = Field(description="Replicas before.")
    to_replicas: int = Field(description="Replicas after.")
    reason: str = Field(description="Why.")


class AutoscalingStatus(StatusModel):
    """What the SLO autoscaler observed and decided last."""

    observed_ttft_p95_ms: float | None = Field(default=None, alias="observedTtftP95Ms")
    observed_itl_p95_ms: float | None = Field(default=None, alias="observedItlP95Ms")
    target_ttft_p95_ms: float | None = Field(default=None, alias="targetTtftP95Ms")
    target_itl_p95_ms: float | None = Field(default=None, alias="targetItlP95Ms")
    waiting_requests: float | None = Field(default=None, description="Requests queued across replicas.")
    running_requests: float | None = Field(default=None, description="Requests running across replicas.")
    desired_replicas: int | None = Field(default=None, description="The autoscaler's recommendation.")
    reason: str | None = Field(default=None, description="Why it recommends that.")
    last_scale_time: str | None = Field(default=None, description="RFC 3339 time of the last change.")
    history: list[ScalingDecision] = Field(default_factory=list, description="The last decisions, newest last.")


class PoolReplicas(StatusModel):
    """The replicas one child workload runs on one pool."""

    pool: str = Field(description="The GPU pool.")
    role: str = Field(description="primary (status.plan) or overflow (the next pool in status.pools).")
    workload: str = Field(description="Name of the Deployment or LeaderWorkerSet.")
    replicas: int = Field(description="Replicas this workload is asked for.")
    ready_replicas: int = Field(default=0, description="Of them, replicas whose pods are all Ready.")


class PlacementStatus(StatusModel):
    """Where the replicas run: one entry per child workload, and a one-line summary for kubectl get."""

    summary: str = Field(description="Replicas per pool, e.g. 'h200 1/3, h100 2/2 (overflow)': ready/asked.")
    pools: list[PoolReplicas] = Field(default_factory=list, description="One entry per child workload.")


class PerformanceStatus(StatusModel):
    """Self-calibration (docs/autoscaling.md): the model's predictions against what the replicas did, at the load
    they carried in the last metrics window, and the correction factors fitted from such windows."""

    request_rate_per_replica: float | None = Field(default=None, description="Arrivals per second per replica.")
    mean_prompt_tokens: float | None = Field(default=None, description="Of the requests that finished.")
    mean_output_tokens: float | None = Field(default=None, description="Of the requests that finished.")
    observed_ttft_ms: float | None = Field(default=None, description="Mean TTFT observed.")
    predicted_ttft_ms: float | None = Field(default=None, description="Mean TTFT the model predicts (uncorrected).")
    corrected_ttft_ms: float | None = Field(default=None, description="Mean TTFT with the fitted factors.")
    observed_itl_ms: float | None = Field(default=None, description="Mean inter-token latency observed.")
    predicted_itl_ms: float | None = Field(default=None, description="Mean ITL the model predicts (uncorrected).")
    corrected_itl_ms: float | None = Field(default=None, description="Mean ITL with the fitted factors.")
    ttft_interval: str | None = Field(
        default=None, description="The observed/predicted TTFT ratio the model's held-out record allows, low-high."
    )
    itl_interval: str | None = Field(default=None, description="The same for the inter-token latency.")
    prefill_factor: float = Field(default=1.0, description="Prompt work takes this many times the model's time.")
    decode_factor: float = Field(default=1.0, description="Decode steps take this many times the model's time.")
    samples: int = Field(default=0, description="Metrics windows the factors rest on.")
    confidence: float = Field(default=0.0, description="0..1: the factors are known to within ±(1 − confidence).")
    capacity_rps: float | None = Field(
        default=None, description="One replica's requests/s within the SLO with the factors (what the autoscaler uses)."
    )
    model_capacity_rps: float | None = Field(default=None, description="The same by the uncorrected model.")
    skipped: str | None = Field(default=None, description="Why the last window was no evidence, if it was not.")


class PoolStartup(StatusModel):
    """How long this pool's replicas took from pod creation to Ready."""

    pool: str = Field(description="The GPU pool.")
    p50_seconds: float = Field(description="Median start-up, seconds.")
    p95_seconds: float = Field(description="95th percentile start-up, seconds: the autoscaler's scale-up lead time.")
    samples: int = Field(description="Pods measured (the Ready pods now on the pool).")


class StartupStatus(StatusModel):
    """Measured cold start per pool (kube/startup.py): the pods Ready now, each from its creation to its Ready
    transition; a pool with none Ready now keeps its last figures."""

    pools: list[PoolStartup] = Field(default_factory=list, description="One entry per pool measured.")


class MeasuredLayout(StatusModel):
    """The GPU product and parallelism a speed was measured on."""

    gpu_product: str = Field(description="GPU product (GPU Feature Discovery name).")
    tensor_parallel_size: int = Field(description="vLLM --tensor-parallel-size.")
    pipeline_parallel_size: int = Field(description="vLLM --pipeline-parallel-size.")
    expert_parallel: bool = Field(default=False, description="vLLM --enable-expert-parallel.")


def _slack_field(description: str) -> Any:
    """A measured speed's slack: a finite factor of at least 1 (perf.Replica.measured refuses anything else, so a
    record outside it is refused as a whole when read back, never passed on)."""
    return Field(default=None, ge=1.0, allow_inf_nan=False, description=description)


class AppliedCorrection(StatusModel):
    """The measured speed the plan in force is sized with (spec.autoscaling.applyRecommendations)."""

    prefill_factor: float = Field(description="Prompt work takes this many times the model's time.")
    decode_factor: float = Field(description="Decode steps take this many times the model's time.")
    slack: float | None = _slack_field(
        "e^(the factors' half-width) when they were applied, at least 1; with measuredOn, plans of that layout use the "
        "narrower slow edges of a measured speed (absent: the model's cross-source edges everywhere)."
    )
    measured_on: MeasuredLayout | None = Field(default=None, description="Where the factors were measured.")
    model: str = Field(description="spec.model.name the factors were measured on; another model ignores them.")
    time: str = Field(description="RFC 3339 time it was applied.")


class RecommendationStatus(StatusModel):
    """The plan the corrected model (status.performance's factors) would choose, against the plan in force."""

    prefill_factor: float = Field(description="The factors the recommendation rests on.")
    decode_factor: float = Field(description="The factors the recommendation rests on.")
    confidence: float = Field(description="Of the factors (status.performance.confidence).")
    slack: float | None = _slack_field(
        "e^(the factors' half-width), at least 1, once they rest on enough evidence: the plan in force's layout is "
        "re-sized with the slow edges of a measured speed times it, every other layout with the model's own."
    )
    summary: str | None = Field(default=None, description="The recommended plan in one line.")
    changes: list[str] = Field(
        default_factory=list, description="What would change against the plan in force; empty: nothing."
    )
    state: str = Field(
        description="UpToDate (nothing would change), Applied, Recommended (not applied: see message), or "
        "Unplannable (the corrected model finds no plan: see message)."
    )
    message: str = Field(description="Why, in one line.")
    applied: AppliedCorrection | None = Field(
        default=None, description="The correction the plan in force uses (applyRecommendations), if any."
    )


class LLMDeploymentStatus(StatusModel):
    """What rightsizer computed and observed."""

    observed_generation: int | None = Field(default=None, description="metadata.generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Sized, PolicyCompliant, Progressing, Available, Degraded, Ready."
    )
    plan: Plan | None = Field(default=None, description="The serving plan, as `rightsizer plan -o json` prints it.")
    pools: list[PoolPlan] = Field(
        default_factory=list, description="Every allowed pool's own plan, ranked; the first is status.plan's pool."
    )
    placement: PlacementStatus | None = Field(default=None, description="Replicas per pool.")
    replicas: int | None = Field(default=None, description="Replicas wanted (the scale subresource's status).")
    ready_replicas: int | None = Field(default=None, description="Replicas whose pods are all Ready.")
    selector: str | None = Field(default=None, description="Label selector of the serving pods (for HPA).")
    autoscaling: AutoscalingStatus | None = Field(default=None, description="The SLO autoscaler's view.")
    performance: PerformanceStatus | None = Field(
        default=None, description="The performance model against the replicas' own metrics (self-calibration)."
    )
    cost: CostStatus | None = Field(
        default=None, description="GPUs held, their price per hour, GPU-hours over the last day, $ per million tokens."
    )
    startup: StartupStatus | None = Field(
        default=None, description="Measured start-up per pool, pod creation to Ready (the scale-up lead time)."
    )
    recommendation: RecommendationStatus | None = Field(
        default=None, description="The plan the deployment's measured speed calls for (self-calibration)."
    )


class LLMDeployment(WireModel):
    """A whole LLMDeployment object (metadata kept as a plain mapping)."""

    model_config = WireModel.model_config | {"extra": "ignore"}

    api_version: str = Field(default="rightsizer.dev/v1alpha1")
    kind: str = Field(default="LLMDeployment")
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: LLMDeploymentSpec
    status: LLMDeploymentStatus | None = None
