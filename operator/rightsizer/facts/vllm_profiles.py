"""How each vLLM release accounts GPU memory and picks scheduler defaults: data, looked up by version.

Every number here is either read from vLLM's source at the cited release or fitted to the startup logs in
docs/sizing.md (the calibration set: vLLM 0.19 on H100, plus the worked checks of 0.10, 0.11 and 0.15-0.18).
The activation model has the same *shape* in every release and only its coefficients move:

    activation = persistent + max(forward, sampler)           (sampler only on the last pipeline stage)
    persistent = c0 + T_b · hidden · s_act · k_persistent      (the profiling batch's hidden states stay alive)
    forward    = T_b · s_act · (k_mlp · MLP width per rank + k_hidden · hidden)
    sampler    = max_num_seqs · vocab · (s_act + k_sampler)    (logits, fp32 copies, top-k/top-p sort buffers)

because vLLM's profiling run is one forward pass of max_num_batched_tokens (T_b) tokens followed by a dummy
sampler call over max_num_seqs requests (gpu_model_runner.profile_run). The sampler term dominates for large
vocabularies, which is why activation memory does not shrink with tensor parallelism.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rightsizer.errors import UnsupportedEngineVersionError
from rightsizer.facts.vllm_release import parse_release

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class SchedulerTier:
    """Server (`vllm serve`) defaults for one class of GPU (EngineArgs._set_default_max_num_seqs...)."""

    min_torch_gib: float
    max_num_batched_tokens: int
    max_num_seqs: int
    excluded_name_parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActivationModel:
    persistent_bytes: float
    k_persistent: float
    k_mlp: float
    k_hidden: float
    k_sampler: float  # bytes per (sequence x vocab entry) beyond the logits themselves


@dataclass(frozen=True)
class NonTorchModel:
    """Memory outside torch's allocator that grows during profiling, GiB per rank."""

    tp1: float
    pp_only: float  # pipeline parallel without tensor parallel
    by_tp: tuple[tuple[int, float], ...]  # (TP degree, GiB): the largest degree <= TP applies

    def gib(self, tp: int, pp: int) -> float:
        if tp == 1:
            return self.pp_only if pp > 1 else self.tp1
        applicable = [gib for degree, gib in self.by_tp if degree <= tp]
        return applicable[-1] if applicable else self.by_tp[0][1]


@dataclass(frozen=True)
class CudaGraphModel:
    """CUDA-graph memory estimate: base + per decoder layer on the rank, GiB (fitted to 0.19's estimates)."""

    base_gib: float
    per_layer_gib: float

    def gib(self, layers_on_rank: int) -> float:
        return self.base_gib + self.per_layer_gib * layers_on_rank


@dataclass(frozen=True)
class VllmProfile:
    name: str
    first_version: tuple[int, int]  # applies from this release until the next profile's first_version
    default_gpu_memory_utilization: float
    subtracts_cuda_graphs: bool  # >= 0.21 subtract the graph estimate before sizing the KV cache
    activation: ActivationModel
    non_torch: NonTorchModel
    cuda_graphs: CudaGraphModel
    tiers: tuple[SchedulerTier, ...]  # first matching tier wins; the last one is the fallback
    sources: tuple[str, ...] = field(default=())
    calibrated: bool = True  # False: priors carried over from an earlier release, not yet measured
    # Llama 4's chunked local attention layers get their own KV groups (ChunkedLocalAttentionSpec: a request holds
    # at most attention_chunk_size + max_num_batched_tokens tokens there) only while the hybrid KV cache manager
    # stays on for them: VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 0 in vllm/envs.py at v0.10.2
    # and v0.11.0 (the manager is disabled and every layer is sized as full attention) and to 1 at v0.19.0
    # (flipped by vllm-project/vllm#29627). 0.12-0.16 were not read and keep the 0.11 reading; 0.17 was not read
    # and follows 0.19.
    hybrid_chunked_local_attention: bool = False
    # The unquantized fused-MoE workspaces outlive the profiling forward pass and so sit under the sampler's peak
    # too. At v0.19.0 bf16/fp16 MoE layers run TritonExperts in the modular kernel ("Using TRITON backend for
    # Unquantized MoE", fused_moe/oracle/unquantized.py), whose buffers come from the process-wide
    # WorkspaceManager, grown to the largest request and never freed (fused_moe/modular_kernel.py@v0.19.0:1009-1070,
    # v1/worker/workspace.py@v0.19.0:90-175). At v0.10.2 and v0.11.0 a TP-only unquantized MoE layer calls
    # fused_experts(), whose caches are torch.empty per call and freed with it (fused_moe/layer.py@v0.11.0:603-617).
    # 0.17, 0.18 and 0.20+ were not read and follow 0.19: counting the buffers can only lower the predicted KV cache.
    persistent_moe_workspace: bool = False

    def tier(self, torch_total_gib: float, product: str) -> SchedulerTier:
        name = product.lower()
        for tier in self.tiers:
            if torch_total_gib >= tier.min_torch_gib and not any(p in name for p in tier.excluded_name_parts):
                return tier
        return self.tiers[-1]


# Scheduler defaults: vllm/engine/arg_utils.py at v0.11.0 and v0.19.0 (>= 70 GiB and not an A100: 8192 / 1024).
_TIERS_0_11 = (
    SchedulerTier(70.0, 8192, 1024, excluded_name_parts=("a100",)),
    SchedulerTier(0.0, 2048, 256),
)
# v0.33.0 adds a tier for >= 160 GiB devices (B200, B300).
_TIERS_0_33 = (
    SchedulerTier(160.0, 16384, 1024, excluded_name_parts=("a100",)),
    *_TIERS_0_11,
)

# Shape constants shared by every release (fitted once; see docs/sizing.md "Activation memory").
_PERSISTENT = 54 * MIB
_K_PERSISTENT = 1.12
_K_MLP = 3.0  # gate_up output (2 x width) + activation output (1 x width)
_K_HIDDEN = 5.0

_GRAPHS = CudaGraphModel(base_gib=0.30, per_layer_gib=0.017)

PROFILES: tuple[VllmProfile, ...] = (
    VllmProfile(
        name="0.10",
        first_version=(0, 10),
        default_gpu_memory_utilization=0.90,
        subtracts_cuda_graphs=False,
        activation=ActivationModel(_PERSISTENT, _K_PERSISTENT, _K_MLP, _K_HIDDEN, k_sampler=35.95),
        non_torch=NonTorchModel(tp1=0.13, pp_only=0.07, by_tp=((2, 1.38),)),
        cuda_graphs=_GRAPHS,
        tiers=_TIERS_0_11,
        sources=("Qwen3-Next-80B-A3B on 2xH200, vLLM 0.10.2 startup log (worked check C10)",),
    ),
    VllmProfile(
        name="0.11",
        first_version=(0, 11),
        default_gpu_memory_utilization=0.90,
        subtracts_cuda_graphs=False,
        activation=ActivationModel(_PERSISTENT, _K_PERSISTENT, _K_MLP, _K_HIDDEN, k_sampler=35.95),
        non_torch=NonTorchModel(tp1=0.13, pp_only=0.07, by_tp=((2, 0.55),)),
        cuda_graphs=_GRAPHS,
        tiers=_TIERS_0_11,
        sources=(
            "llm-d empirical vLLM 0.11.0 memory results on H100 (Llama-3.1-8B, gpt-oss, Qwen3, 70B FP8 TP2)",
            "Qwen3-14B version sweep, vLLM 0.15/0.16",
        ),
    ),
    VllmProfile(
        name="0.17",
        first_version=(0, 17),
        default_gpu_memory_utilization=0.90,
        subtracts_cuda_graphs=False,
        activation=ActivationModel(_PERSISTENT, _K_PERSISTENT, _K_MLP, _K_HIDDEN, k_sampler=12.45),
        non_torch=NonTorchModel(tp1=0.13, pp_only=0.07, by_tp=((2, 2.08), (4, 2.16), (8, 2.24))),
        cuda_graphs=_GRAPHS,
        tiers=_TIERS_0_11,
        sources=("Qwen3-14B version sweep, vLLM 0.17",),
        hybrid_chunked_local_attention=True,
        persistent_moe_workspace=True,
    ),
    VllmProfile(
        name="0.18",
        first_version=(0, 18),
        default_gpu_memory_utilization=0.90,
        subtracts_cuda_graphs=False,
        activation=ActivationModel(_PERSISTENT, _K_PERSISTENT, _K_MLP, _K_HIDDEN, k_sampler=12.45),
        non_torch=NonTorchModel(tp1=0.25, pp_only=0.07, by_tp=((2, 2.08), (4, 2.16), (8, 2.24))),
        cuda_graphs=_GRAPHS,
        tiers=_TIERS_0_11,
        sources=("vLLM 0.19.0 startup logs on H100, the calibration set (28 starts)", "Qwen3-14B sweep, vLLM 0.18"),
        hybrid_chunked_local_attention=True,
        persistent_moe_workspace=True,
    ),
    VllmProfile(
        name="0.21",
        first_version=(0, 21),
        default_gpu_memory_utilization=0.92,
        subtracts_cuda_graphs=True,
        activation=ActivationModel(_PERSISTENT, _K_PERSISTENT, _K_MLP, _K_HIDDEN, k_sampler=12.45),
        non_torch=NonTorchModel(tp1=0.25, pp_only=0.07, by_tp=((2, 2.08), (4, 2.16), (8, 2.24))),
        cuda_graphs=_GRAPHS,
        tiers=_TIERS_0_11,
        sources=("vllm/v1/worker/gpu_worker.py at v0.21.0 (graph estimate subtracted, default u 0.92)",),
        calibrated=False,
        hybrid_chunked_local_attention=True,
        persistent_moe_workspace=True,
    ),
    VllmProfile(
        name="0.33",
        first_version=(0, 33),
        default_gpu_memory_utilization=0.92,
        subtracts_cuda_graphs=True,
        activation=ActivationModel(_PERSISTENT, _K_PERSISTENT, _K_MLP, _K_HIDDEN, k_sampler=12.45),
        non_torch=NonTorchModel(tp1=0.25, pp_only=0.07, by_tp=((2, 2.08), (4, 2.16), (8, 2.24))),
        cuda_graphs=_GRAPHS,
        tiers=_TIERS_0_33,
        sources=("vllm/engine/arg_utils.py at v0.33.0 (>= 160 GiB scheduler tier)",),
        calibrated=False,
        hybrid_chunked_local_attention=True,
        persistent_moe_workspace=True,
    ),
)


def profile_for(version: str) -> VllmProfile:
    """The accounting profile that applies to a vLLM release."""
    major, minor, _ = parse_release(version)
    applicable = [p for p in PROFILES if p.first_version <= (major, minor)]
    if not applicable:
        oldest = ".".join(map(str, PROFILES[0].first_version))
        raise UnsupportedEngineVersionError(
            "spec.serving.engine.version",
            f"vLLM {version} predates the V1 engine accounting rightsizer models",
            f"use vLLM {oldest} or later",
        )
    return applicable[-1]
