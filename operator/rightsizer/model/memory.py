"""vLLM's GPU memory accounting, reproduced: weights, activation, non-torch and CUDA-graph memory per rank,
then the KV cache it leaves, in blocks, tokens and maximum concurrency exactly as vLLM computes them.

    requested = torch_total × gpu_memory_utilization
    kv_memory = requested − weights − activation − non_torch (− cuda_graphs from vLLM 0.21 on)
    blocks    = floor(kv_memory / (page_bytes × layers_per_group))          (minimum over pipeline stages)
    tokens    = floor(blocks / groups) × block_size                          ("GPU KV cache size")
    max_concurrency = blocks / blocks_per_request(max_model_len)             ("Maximum concurrency")

References: vllm/v1/worker/gpu_worker.py (determine_available_memory), vllm/v1/core/kv_cache_utils.py
(get_num_blocks, _get_kv_cache_groups_uniform_page_size, get_max_concurrency_for_kv_cache_config),
vllm/v1/kv_cache_interface.py (page sizes, per-request usage), vllm/model_executor/models/config.py (hybrid
block size). See docs/sizing.md for the derivation and the calibration.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache

from rightsizer.errors import SizingError
from rightsizer.facts.gpus import GpuProduct
from rightsizer.facts.vllm_multimodal import DEFAULT_ITEMS_PER_PROMPT
from rightsizer.facts.vllm_profiles import GIB, VllmProfile
from rightsizer.model.config import CheckpointQuantization, LayerKind, ModelFacts, WeightFormat
from rightsizer.model.params import (
    ParamGroup,
    groups_on_stage,
    inventory,
    per_rank_count,
    pipeline_layers,
    placement_cache_clear,
    tied_head_on_last_stage,
)

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
FP8_KV_DTYPES = frozenset({"fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc"})
DEFAULT_BLOCK_SIZE = 16
HYBRID_BLOCK_ALIGNMENT = 16  # FlashAttention needs block sizes in multiples of 16
# vLLM 0.11 padded MXFP4 expert widths to a multiple of 256 (gpt-oss-120b loads as 64.38 GiB, not 60.8);
# later releases pad less on some backends, so 256 stays the safe assumption.
MXFP4_INTERMEDIATE_ALIGNMENT = 256


@dataclass(frozen=True)
class EngineSettings:
    """The vLLM arguments that change memory."""

    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    gpu_memory_utilization: float
    dtype: str  # resolved compute dtype
    kv_cache_dtype: str  # "auto" or an fp8 variant
    weight_format: WeightFormat
    group_size: int | None = None  # for grouped int4 formats
    quantize_attention: bool = True  # False when the checkpoint leaves attention unquantized (gpt-oss)
    expert_parallel: bool = False  # --enable-expert-parallel: whole experts per rank instead of a TP slice of each
    # Multimodal checkpoints (model.vision): whether the release builds the encoder, the --limit-mm-per-prompt pins
    # (modality -> items; a modality left out allows DEFAULT_ITEMS_PER_PROMPT), and v0.11's widened encoder outputs.
    encoder_loaded: bool = True
    mm_limits: tuple[tuple[str, int], ...] = ()
    widen_encoder_outputs: bool = False
    # --mm-encoder-tp-mode data (model.multimodal): every TP rank holds the whole encoder and encodes its share of
    # the images; only Llama 4's multi_modal_projector stays column-parallel (mllama4.py@v0.19.0:158-173).
    encoder_data_parallel: bool = False

    @property
    def moe_tensor_parallel(self) -> int:
        """How many ways each expert's width is split: 1 under expert parallelism (vLLM's FusedMoEParallelConfig
        sets the MoE tp_size to 1 and ep_size to TP), else the TP degree."""
        return 1 if self.expert_parallel else self.tensor_parallel_size

    @property
    def act_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def kv_bytes(self) -> int:
        return 1 if self.kv_cache_dtype in FP8_KV_DTYPES else self.act_bytes


@dataclass(frozen=True)
class KVLayout:
    """How one rank's KV cache is organised into blocks."""

    block_size: int
    page_bytes: int  # one layer's memory for one block
    layers_per_group: int  # g: layers sharing one block of the pool
    groups: int  # G: block tables (kv-cache groups)
    blocks_per_request: int  # blocks one max_model_len request holds across all groups
    layer_counts: tuple[tuple[LayerKind, int], ...]  # layers of each kind on this rank
    sliding_window: int | None = None
    padded_state_bytes: int = 0  # linear-attention state padded up to the page size (0 when none)
    attention_chunk_size: int | None = None  # Llama 4 chunked local attention (LayerKind.CHUNKED groups)

    @property
    def block_bytes(self) -> int:
        return self.page_bytes * self.layers_per_group


@dataclass(frozen=True)
class RankMemory:
    """One pipeline stage's GPU (all TP ranks of a stage are identical)."""

    stage: int
    layers: int
    requested: float
    weights: float
    activation: float
    non_torch: float
    cuda_graphs: float
    kv_cache: float
    layout: KVLayout
    blocks: int


@dataclass(frozen=True)
class ReplicaMemory:
    """What vLLM reports for one replica (one engine)."""

    ranks: tuple[RankMemory, ...]
    binding: RankMemory  # the stage with the fewest blocks: it decides the engine's block count
    blocks: int
    kv_cache_tokens: int
    max_concurrency: float
    cuda_graphs_subtracted: bool

    @property
    def fits(self) -> bool:
        """vLLM starts only when one max_model_len request fits (else "To serve at least one request ...")."""
        return self.blocks >= self.binding.layout.blocks_per_request

    def concurrency_at(self, sequence_tokens: int, settings: EngineSettings) -> float:
        """Requests of `sequence_tokens` tokens each that the KV cache holds at once."""
        return self.blocks / blocks_per_request(self.binding.layout, settings, sequence_tokens)


# --- weights -----------------------------------------------------------------------------------------------------


def _storage(f: ModelFacts, s: EngineSettings) -> CheckpointQuantization | None:
    """The checkpoint's exact storage when vLLM loads it in that format (None for unquantized or online fp8)."""
    q = f.quantization
    return q if q is not None and q.format == s.weight_format else None


def bytes_per_param(g: ParamGroup, s: EngineSettings, f: ModelFacts) -> float:
    """Bytes per parameter of group `g` as vLLM stores it: the activation dtype unless the weight format quantizes
    this linear layer, then packed values plus scales, zero points and act-order indices (checkpoint_quant.py)."""
    fmt = s.weight_format
    if not g.quantizable or fmt == WeightFormat.NONE:
        return s.act_bytes
    if not s.quantize_attention and not g.is_expert and g.module.startswith(("self_attn", "linear_attn")):
        return s.act_bytes
    stored = _storage(f, s)
    if stored is not None:
        if stored.experts_only and not g.is_expert:
            return s.act_bytes
        return stored.bytes_per_param(g.count, g.outputs, g.inputs)
    if fmt == WeightFormat.MXFP4:
        # MXFP4 checkpoints quantize the MoE experts only: 4-bit values plus one 8-bit scale per 32.
        return 0.5 + 1 / 32 if g.is_expert else s.act_bytes
    if fmt in (WeightFormat.FP8, WeightFormat.W8A8):
        return 1.0  # online fp8: one scale per tensor
    if fmt == WeightFormat.NVFP4:
        return 0.5 + 1 / 16
    group = s.group_size if s.group_size and s.group_size > 0 else 128
    return 0.5 + 2 / group + 0.5 / group  # int4 values, fp16 scale and packed zero point per group


def weight_width_bounds(f: ModelFacts, s: EngineSettings) -> tuple[float, float]:
    """(smallest, largest) bytes per parameter the weight format allows: a plausible weight term lies between the
    parameter count at each (the largest leaves room for scales, zero points and act-order indices)."""
    stored = _storage(f, s)
    smallest = min(s.act_bytes, stored.min_bytes_per_param if stored is not None else 0.5)
    return smallest, float(max(s.act_bytes, 4))


def expert_padding(f: ModelFacts, s: EngineSettings) -> float:
    if s.weight_format != WeightFormat.MXFP4 or f.moe is None:
        return 1.0
    width = f.moe.expert_intermediate_size // s.moe_tensor_parallel
    padded = math.ceil(width / MXFP4_INTERMEDIATE_ALIGNMENT) * MXFP4_INTERMEDIATE_ALIGNMENT
    return padded / width


def weight_bytes(f: ModelFacts, s: EngineSettings, stage: int, layers: range) -> float:
    """Bytes of weights one GPU of pipeline stage `stage` loads ("Model loading took X GiB")."""
    # Only the settings that change weights form the cache key, so the max_num_seqs search reuses the result.
    return weight_bytes_and_count(f, s, stage, layers)[0]


def weight_bytes_and_count(f: ModelFacts, s: EngineSettings, stage: int, layers: range) -> tuple[float, float]:
    """(bytes, parameters) of the weights one GPU of stage `stage` holds (the rotary cache counted in bytes only)."""
    weights_only = replace(
        s,
        max_num_seqs=1,
        max_num_batched_tokens=1,
        max_model_len=1,
        gpu_memory_utilization=1.0,
        kv_cache_dtype="auto",
        mm_limits=(),
        widen_encoder_outputs=False,
    )
    return _weight_bytes(f, weights_only, stage, layers.start, layers.stop)


def clear_caches() -> None:
    """Forget the memoised parameter inventories and weight totals (for cold-start measurements)."""
    inventory.cache_clear()
    placement_cache_clear()
    _weight_bytes.cache_clear()


@lru_cache(maxsize=4096)
def _weight_bytes(
    f: ModelFacts, s: EngineSettings, stage: int, first_layer: int, end_layer: int
) -> tuple[float, float]:
    layers = range(first_layer, end_layer)
    tp, pp = s.tensor_parallel_size, s.pipeline_parallel_size
    groups = inventory(f)
    total = params = 0.0
    expert_scale = expert_padding(f, s)
    for g in groups_on_stage(f, stage, pp, layers):
        if g.module == "vision_tower" and not s.encoder_loaded:
            continue  # a text-only start the release builds without the encoder (facts.vllm_multimodal)
        count = per_rank_count(g, f, tp, s.expert_parallel) * (expert_scale if g.is_expert else 1.0)
        if g.module == "vision_tower" and s.encoder_data_parallel and f.vision is not None:
            sharded = f.vision.tp_sharded_in_data_mode
            count = g.count - sharded + sharded / tp
        total += count * bytes_per_param(g, s, f)
        params += count
    if stage == pp - 1 and tied_head_on_last_stage(f, pp):
        embed = next(g for g in groups if g.module == "embed_tokens")
        total += per_rank_count(embed, f, tp) * s.act_bytes
        params += per_rank_count(embed, f, tp)
    # The rotary cos/sin cache (one per rank, in the model dtype) is part of what the loader reports.
    total += f.rope_cache_positions * f.rotary_dim * s.act_bytes
    return total, params


# --- activation --------------------------------------------------------------------------------------------------


def _mlp_width_per_rank(f: ModelFacts, tp: int, layers: range) -> float:
    widest = 0.0
    for layer in layers:
        if f.moe is None or layer in f.moe.dense_layers:
            widest = max(widest, f.intermediate_size / tp)
        else:
            routed = f.moe.experts_per_token * f.moe.expert_intermediate_size / tp
            widest = max(widest, routed + f.moe.shared_intermediate_size / tp)
    return widest


def expert_parallel_workspace_growth(f: ModelFacts, s: EngineSettings, layers: range) -> float:
    """Bytes per batched token the fused-MoE workspaces grow by under expert parallelism, where each rank runs
    full-width experts. vLLM sizes them (M, top_k, max(I_rank, hidden)) and (M, top_k, max(2·I_rank, hidden))
    (TritonExperts.workspace_shapes, vllm/model_executor/layers/fused_moe/fused_moe.py@v0.19.0:1976-1991), so they
    grow only where the full expert width exceeds the hidden size; the calibrated forward term covers the TP case."""
    moe = f.moe
    if moe is None or not s.expert_parallel or len(layers) <= len(moe.dense_layers):
        return 0.0
    i, h, tp = moe.expert_intermediate_size, f.hidden_size, s.tensor_parallel_size
    growth = (max(i, h) - max(i / tp, h)) + (max(2 * i, h) - max(2 * i / tp, h))
    return moe.experts_per_token * growth * s.act_bytes


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def moe_workspace_bytes(f: ModelFacts, s: EngineSettings, profile: VllmProfile, layers: range) -> float:
    """Bytes of the fused-MoE workspace that stays allocated after the profiling forward pass, on releases whose
    unquantized MoE layers draw it from vLLM's process-wide WorkspaceManager (VllmProfile.persistent_moe_workspace).

    TritonExperts.workspace_shapes asks for (M, top_k, max(I, K)) and (M, top_k, max(2·I, K)) elements of the
    activation dtype, I the expert width per rank and K the hidden size (fused_moe/fused_moe.py@v0.19.0:1976-1991);
    _allocate_buffers takes both at once from the manager for M = the whole batch (modular_kernel.py@v0.19.0:
    1009-1070, 1189-1201), each rounded up to 256 bytes (v1/worker/workspace.py@v0.19.0:90-115), and the manager
    keeps the buffer for the life of the process. The profiling forward pass runs M = max_num_batched_tokens tokens.
    For small experts (I below the hidden size) this is top_k · 2 · hidden per token, far more than the experts'
    own width suggests: Qwen3-30B-A3B (I 768, hidden 2048, top-8) keeps 0.50 GiB, exactly what its vLLM 0.19 log
    shows above the sampler's peak."""
    moe = f.moe
    if moe is None or not profile.persistent_moe_workspace or s.weight_format != WeightFormat.NONE:
        return 0.0  # quantized MoE backends (fp8, MXFP4, int4 ...) size their buffers otherwise: not read
    if all(layer in moe.dense_layers for layer in layers):
        return 0.0
    width, hidden = moe.expert_intermediate_size // s.moe_tensor_parallel, f.hidden_size
    rows = s.max_num_batched_tokens * moe.experts_per_token
    first = rows * max(width, hidden) * s.act_bytes  # gemm1 output view / gemm2 output (workspace13)
    second = rows * max(2 * width, hidden) * s.act_bytes  # activation input (workspace2)
    return float(_round_up(first, 256) + _round_up(second, 256))


@dataclass(frozen=True)
class EncoderProfiling:
    """vLLM's encoder profiling run (gpu_model_runner.profile_run): `items` dummy items of `modality` go through the
    encoder and their outputs stay in the encoder cache, `rows` embeddings of `width` elements each, through the
    language model's dummy run. So do the dummy items' inputs: profile_run keeps `batched_dummy_mm_inputs` (the
    pixel tensors, moved to the GPU and cast to the model dtype by the processor's _postprocess_output) referenced
    until it returns, so they are alive during the language model's forward pass and the sampler
    (v1/worker/gpu_model_runner.py profile_run and multimodal/processing/context.py@v0.19.0:225-236; the same in
    v0.10.2 and v0.11.0). `input_elements` per item."""

    modality: str
    tokens_per_item: int
    encoder_budget: int
    items: int
    rows: int
    width: int
    input_elements: int = 0

    def cached_bytes(self, act_bytes: int) -> float:
        return float(self.items * self.rows * self.width * act_bytes)

    def input_bytes(self, act_bytes: int) -> float:
        return float(self.items * self.input_elements * act_bytes)


def encoder_profiling(f: ModelFacts, s: EngineSettings) -> EncoderProfiling | None:
    """The encoder run vLLM profiles, or None when it profiles none (a text model, or every modality limited to 0).

    The modality with the most tokens per item is profiled (MultiModalBudget.get_modality_with_max_tokens); the
    encoder budget is max(max_num_batched_tokens, those tokens) (compute_mm_encoder_budget); the items are
    max(1, min(budget // tokens, max_num_seqs × items per prompt)), items per prompt being
    max(1, min(limit, max_model_len // tokens)) (MultiModalBudget.get_max_items; chunked prefill on, vLLM's default,
    else vLLM profiles fewer). v0.11 widens each item's output to the budget's rows when it is shorter.
    Read at v0.10.2 (v1/worker/utils.py), v0.11.0 and v0.19.0 (multimodal/encoder_budget.py)."""
    if f.vision is None or not s.encoder_loaded:
        return None
    limits = dict(s.mm_limits)
    active = [m for m in f.vision.outputs.modalities if limits.get(m, DEFAULT_ITEMS_PER_PROMPT) > 0]
    if not active:
        return None
    per_item = {m: f.vision.outputs.per_item(m, s.max_model_len) for m in active}
    modality = max(active, key=lambda m: (per_item[m][0], m))
    tokens, rows = per_item[modality]
    budget = max(s.max_num_batched_tokens, tokens)
    per_prompt = max(1, min(limits.get(modality, DEFAULT_ITEMS_PER_PROMPT), s.max_model_len // tokens))
    items = max(1, min(budget // tokens, s.max_num_seqs * per_prompt))
    inputs = rows * f.vision.outputs.input_per_row  # the item's own rows: v0.11 widens its output, not its input
    if s.widen_encoder_outputs:
        rows = max(rows, budget)
    width = f.hidden_size * f.vision.outputs.width_factor
    return EncoderProfiling(modality, tokens, budget, items, rows, width, inputs)


def activation_bytes(f: ModelFacts, s: EngineSettings, profile: VllmProfile, layers: range, last: bool) -> float:
    """Peak of vLLM's profiling run on one rank: persistent + max(forward pass, sampler on the last stage), plus the
    encoder outputs a multimodal model's profiling run keeps cached through them (every rank runs profile_run).
    A fused-MoE workspace that outlives the forward pass (moe_workspace_bytes) is still allocated when the sampler
    runs, so it adds to the sampler's side; the forward side already holds it."""
    m, t_b, act = profile.activation, s.max_num_batched_tokens, s.act_bytes
    persistent = m.persistent_bytes + t_b * f.hidden_size * act * m.k_persistent
    top_k = f.moe.experts_per_token if f.moe is not None and len(layers) > len(f.moe.dense_layers) else 0
    width = _mlp_width_per_rank(f, s.tensor_parallel_size, layers)
    # k_mlp counts the gate_up output (2 x width) and the activation's output (1 x width); an ungated MLP's fc1
    # output is one width wide (PhiMLP.forward, vllm/model_executor/models/phi.py@v0.19.0:166-170).
    k_mlp = m.k_mlp if f.mlp_gated else m.k_mlp - 1
    forward = t_b * act * (k_mlp * width + (m.k_hidden + top_k) * f.hidden_size)
    forward += t_b * expert_parallel_workspace_growth(f, s, layers)
    sampler = s.max_num_seqs * f.vocab_size * (act + m.k_sampler) if last else 0.0
    encoder = encoder_profiling(f, s)
    cached = encoder.cached_bytes(act) + encoder.input_bytes(act) if encoder is not None else 0.0
    return persistent + max(forward, moe_workspace_bytes(f, s, profile, layers) + sampler) + cached


# --- KV cache layout ---------------------------------------------------------------------------------------------


def _block_size(f: ModelFacts, gpu: GpuProduct) -> int:
    if f.is_mla:
        # FlashMLA (Hopper, SM 9.0) and CUTLASS-MLA (data-centre Blackwell, SM 10.x) force their kernel block sizes;
        # SM 12.0 Blackwell (RTX PRO 6000) has neither kernel and keeps vLLM's default.
        major = gpu.compute_capability[0]
        return {9: 64, 10: 128}.get(major, DEFAULT_BLOCK_SIZE)
    return DEFAULT_BLOCK_SIZE


def attention_bytes_per_token(f: ModelFacts, s: EngineSettings) -> int:
    """KV bytes one attention layer stores per token on one TP rank."""
    if f.is_mla:
        return f.attention.head_dim * s.kv_bytes  # one latent vector, replicated on every rank
    heads = max(1, f.attention.num_kv_heads // s.tensor_parallel_size)
    return 2 * heads * f.attention.head_dim * s.kv_bytes


def linear_state_bytes(f: ModelFacts, s: EngineSettings) -> int:
    """Gated DeltaNet state per layer per request on one TP rank: conv state + recurrent (temporal) state."""
    la, tp = f.linear_attention, s.tensor_parallel_size
    if la is None:
        return 0
    conv_dim = (2 * la.num_key_heads * la.key_head_dim + la.num_value_heads * la.value_head_dim) // tp
    conv = (la.conv_kernel - 1) * conv_dim
    temporal = (la.num_value_heads // tp) * la.value_head_dim * la.key_head_dim
    return (conv + temporal) * s.act_bytes


def blocks_per_request(layout: KVLayout, s: EngineSettings, tokens: int) -> int:
    """Blocks one request of `tokens` tokens holds, summed over kv-cache groups (vLLM's max_memory_usage)."""
    b, total = layout.block_size, 0
    for kind, n in layout.layer_counts:
        groups = math.ceil(n / layout.layers_per_group)
        if kind == LayerKind.FULL:
            per_group = math.ceil(tokens / b)
        elif kind == LayerKind.SLIDING:
            window = layout.sliding_window or tokens
            per_group = math.ceil(min(window - 1 + s.max_num_batched_tokens, tokens) / b) + 1
        elif kind == LayerKind.CHUNKED:
            # ChunkedLocalAttentionSpec.max_memory_usage_bytes: the current chunk plus the scheduled tokens, no
            # extra block (vllm/v1/kv_cache_interface.py at v0.11.0 and v0.19.0).
            chunk = layout.attention_chunk_size or tokens
            per_group = math.ceil(min(chunk + s.max_num_batched_tokens, tokens) / b)
        else:
            per_group = 1
        total += groups * per_group
    return total


def kv_layout(f: ModelFacts, s: EngineSettings, gpu: GpuProduct, kinds: tuple[LayerKind, ...]) -> KVLayout:
    """Block size, page size and grouping for the layers of one rank."""
    block = _block_size(f, gpu)
    per_token = attention_bytes_per_token(f, s)
    state = linear_state_bytes(f, s)
    if state and per_token * block < state:
        # Hybrid models: raise the attention block until one page holds a whole recurrent state.
        block = HYBRID_BLOCK_ALIGNMENT * math.ceil(state / (HYBRID_BLOCK_ALIGNMENT * per_token))
    page = per_token * block
    counts = Counter(kinds)
    smallest, largest = min(counts.values()), max(counts.values())
    # vLLM packs each layer kind into groups of equal size: the rarest kind's count, unless the counts are
    # close (then the largest, to avoid many padding layers).
    group = largest if largest < smallest * 1.5 else smallest
    groups = sum(math.ceil(n / group) for n in counts.values())
    layout = KVLayout(
        block_size=block,
        page_bytes=page,
        layers_per_group=group,
        groups=groups,
        blocks_per_request=0,
        layer_counts=tuple(sorted(counts.items())),
        sliding_window=f.sliding_window,
        padded_state_bytes=page if state else 0,
        attention_chunk_size=f.attention_chunk_size,
    )
    return replace(layout, blocks_per_request=blocks_per_request(layout, s, s.max_model_len))


def kv_layer_kinds(f: ModelFacts, profile: VllmProfile, layers: range) -> tuple[LayerKind, ...]:
    """The KV cache type of each layer on a rank. Llama 4's chunked local attention layers form their own groups
    only where the release keeps the hybrid KV cache manager on for them; otherwise vLLM's
    unify_hybrid_kv_cache_specs turns them into full attention (vllm/v1/core/kv_cache_utils.py at v0.11.0)."""
    chunked = f.chunked_layers if profile.hybrid_chunked_local_attention else frozenset()
    return tuple(LayerKind.CHUNKED if i in chunked else f.layer_kinds[i] for i in layers)


# --- invariants --------------------------------------------------------------------------------------------------


def check_terms(
    f: ModelFacts, s: EngineSettings, weights: float, params: float, *, activation: float, non_torch: float
) -> None:
    """Every term of the breakdown is finite and non-negative, and the weights lie between the parameter count at
    the smallest and at the largest storage width the format allows; otherwise the plan is refused, never shown."""
    smallest, largest = weight_width_bounds(f, s)
    if not (math.isfinite(weights) and params * smallest * (1 - 1e-9) <= weights <= params * largest):
        fmt = s.weight_format.value
        raise SizingError(
            "spec.model.config.quantization_config",
            f"weights of {weights / GIB:.2f} GiB for {params / 1e9:.3f}B parameters per GPU are outside what "
            f"{fmt} storage allows ({smallest:g} to {largest:g} bytes per parameter)",
            "check the checkpoint's quantization_config (bits, group_size) against the published checkpoint",
        )
    for name, value in (("activation", activation), ("non-torch", non_torch)):
        if not math.isfinite(value) or value < 0:
            raise SizingError("spec.serving", f"the {name} memory term is {value}", "report this as a rightsizer bug")


# --- putting it together -----------------------------------------------------------------------------------------


def rank_memory(
    f: ModelFacts, s: EngineSettings, gpu: GpuProduct, profile: VllmProfile, *, stage: int, layers: range
) -> RankMemory:
    pp = s.pipeline_parallel_size
    requested = gpu.torch_total_gib * GIB * s.gpu_memory_utilization
    if profile.subtracts_cuda_graphs:
        requested = math.ceil(requested)
    weights, params = weight_bytes_and_count(f, s, stage, layers)
    activation = activation_bytes(f, s, profile, layers, last=stage == pp - 1)
    non_torch = profile.non_torch.gib(s.tensor_parallel_size, pp) * GIB
    graphs = profile.cuda_graphs.gib(len(layers)) * GIB
    rope_cache = f.rope_cache_positions * f.rotary_dim * s.act_bytes
    check_terms(f, s, weights - rope_cache, params, activation=activation, non_torch=non_torch)
    kv = requested - weights - activation - non_torch - (graphs if profile.subtracts_cuda_graphs else 0.0)
    layout = kv_layout(f, s, gpu, kv_layer_kinds(f, profile, layers))
    blocks = max(0, int(kv // layout.page_bytes // layout.layers_per_group))
    return RankMemory(stage, len(layers), requested, weights, activation, non_torch, graphs, kv, layout, blocks)


def replica_memory(f: ModelFacts, s: EngineSettings, gpu: GpuProduct, profile: VllmProfile) -> ReplicaMemory:
    """Memory of every pipeline stage and the engine-wide KV cache figures vLLM logs."""
    stages = pipeline_layers(f.num_layers, s.pipeline_parallel_size)
    ranks = tuple(rank_memory(f, s, gpu, profile, stage=i, layers=layers) for i, layers in enumerate(stages))
    binding = min(ranks, key=lambda r: r.blocks)
    blocks = binding.blocks
    layout = binding.layout
    concurrency = blocks / layout.blocks_per_request if layout.blocks_per_request else 0.0
    if profile.subtracts_cuda_graphs:
        tokens = int(concurrency * s.max_model_len)  # from 0.21 the token figure is derived from concurrency
    else:
        tokens = blocks // layout.groups * layout.block_size
    return ReplicaMemory(ranks, binding, blocks, tokens, concurrency, profile.subtracts_cuda_graphs)
