"""One engine step of one replica: a roofline per operation and per pipeline stage.

    linear    = max(weight bytes / HBM,  GEMM FLOPs / dense peak)        weights are read once per step
    attention = max(KV bytes / HBM,      attention FLOPs / bf16 peak)     KV of every decoding sequence is read
    comm      = all-reduces × (latency + 2(TP−1)/TP × tokens × hidden × bytes / link)      (TP > 1 only)
    stage     = linear + attention + comm
    step      = max(Σ stages + hand-offs, micro-batches × slowest stage) + per-step overhead     (PP > 1)

HBM, peak FLOP/s and link bandwidth come from facts/gpus.py, each scaled by a fitted efficiency
(facts/perf_calibration.py). Weight bytes per rank follow the parameter inventory exactly as memory.py counts
them (per TP shard, per pipeline stage, in the checkpoint's format); for MoE layers only the experts the batch's
tokens are routed to are read: a fraction 1 − (1 − k/E)^tokens. The embedding is a lookup and is not streamed.
With expert parallelism (--enable-expert-parallel, EP = TP, one data-parallel rank) a GPU holds whole experts, the
busiest one ceil(E/TP) of them, and reads the same routed fraction of them; the MoE output is still summed by the
TP all-reduce, because vLLM uses its all-to-all kernels only with more than one data-parallel rank
(FusedMoEParallelConfig.use_all2all_kernels = dp_size > 1 and use_ep, fused_moe/config.py@v0.19.0:945-946;
DefaultMoERunner.maybe_all_reduce_tensor_model_parallel, fused_moe/runner/default_moe_runner.py@v0.19.0:378-385),
so the communication term is unchanged.
GEMM FLOPs use the FP8 (or FP4) tensor-core peak when the weights are in that format and the GPU has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from rightsizer.facts.gpus import GpuProduct
from rightsizer.facts.perf_calibration import (
    CALIBRATED_PRODUCTS,
    INTER_NODE_GB_PER_S,
    INTER_NODE_LATENCY_S,
    VLLM,
    Efficiency,
)
from rightsizer.model.config import LayerKind, ModelFacts, WeightFormat
from rightsizer.model.memory import (
    EngineSettings,
    KVLayout,
    ReplicaMemory,
    attention_bytes_per_token,
    blocks_per_request,
    bytes_per_param,  # the exact bytes per parameter of each format, shared so weights are counted once
    expert_padding,
    linear_state_bytes,
)
from rightsizer.model.params import groups_on_stage, inventory, per_rank_count, pipeline_layers
from rightsizer.perf.uncertainty import family_of

TERA = 1e12
GIGA = 1e9


# --- static costs of one pipeline stage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StageCost:
    """Per-GPU costs of one pipeline stage (all TP ranks of a stage are identical)."""

    dense_weight_bytes: float  # read every step: attention, dense MLP, shared experts, norms
    expert_weight_bytes: float  # all routed experts on this rank; a step reads the routed fraction
    head_weight_bytes: float  # LM head (last stage only)
    layer_flops_per_token: float  # 2 × active decoder-layer parameters on this rank
    head_flops_per_token: float  # 2 × LM-head parameters on this rank, per sampled token
    full_kv_bytes_per_token: float  # KV bytes read per context token, over the full-attention layers
    sliding_kv_bytes_per_token: float  # same over sliding-window layers (context capped at the window)
    state_bytes_per_seq: float  # linear-attention recurrent state, read and written each step
    full_attention_flops_per_pair: float  # FLOPs per (query token, context token) pair, full layers
    sliding_attention_flops_per_pair: float
    allreduces: int  # tensor-parallel all-reduces per step


def _attention_flops_per_pair(f: ModelFacts, tp: int) -> float:
    """QKᵀ and PV: 2 FLOPs each per head dimension, per query head on this rank."""
    heads = max(1, f.attention.num_heads // tp)
    return 4.0 * heads * f.attention.head_dim


def stage_cost(f: ModelFacts, s: EngineSettings, stage: int, layers: range) -> StageCost:
    tp, pp = s.tensor_parallel_size, s.pipeline_parallel_size
    groups = inventory(f)
    padding = expert_padding(f, s)
    dense = experts = head = 0.0
    layer_params = expert_params = head_params = 0.0
    for g in groups_on_stage(f, stage, pp, layers):
        if g.module == "embed_tokens":
            continue  # a lookup: one row per token, not streamed
        count = per_rank_count(g, f, tp, s.expert_parallel)
        size = count * bytes_per_param(g, s, f)
        if g.module == "lm_head":
            head, head_params = head + size, head_params + count
        elif g.is_expert:
            experts, expert_params = experts + size * padding, expert_params + count
        else:
            dense, layer_params = dense + size, layer_params + count
    if stage == pp - 1 and f.tie_word_embeddings:
        embed = next(g for g in groups if g.module == "embed_tokens")
        count = per_rank_count(embed, f, tp)
        head, head_params = head + count * s.act_bytes, head_params + count
    routed = f.moe.experts_per_token / f.moe.num_experts if f.moe is not None else 0.0
    kinds = [f.layer_kinds[i] for i in layers]
    per_token = attention_bytes_per_token(f, s)
    per_pair = _attention_flops_per_pair(f, tp)
    full, sliding = kinds.count(LayerKind.FULL), kinds.count(LayerKind.SLIDING)
    return StageCost(
        dense_weight_bytes=dense,
        expert_weight_bytes=experts,
        head_weight_bytes=head,
        layer_flops_per_token=2.0 * (layer_params + expert_params * routed),
        head_flops_per_token=2.0 * head_params,
        full_kv_bytes_per_token=full * per_token,
        sliding_kv_bytes_per_token=sliding * per_token,
        state_bytes_per_seq=2.0 * kinds.count(LayerKind.LINEAR) * linear_state_bytes(f, s),
        full_attention_flops_per_pair=full * per_pair,
        sliding_attention_flops_per_pair=sliding * per_pair,
        # Two per decoder layer (attention output, MLP output), one for the vocab-parallel embedding.
        allreduces=(2 * len(layers) + (1 if stage == 0 else 0)) if tp > 1 else 0,
    )


def clear_caches() -> None:
    """Forget memoised stage costs (for cold-start measurements)."""
    _stage_costs.cache_clear()


@lru_cache(maxsize=1024)
def _stage_costs(f: ModelFacts, s: EngineSettings) -> tuple[StageCost, ...]:
    """Every stage's costs (memoised: sizing builds a replica per shape several times)."""
    layers = pipeline_layers(f.num_layers, s.pipeline_parallel_size)
    return tuple(stage_cost(f, s, i, stage_layers) for i, stage_layers in enumerate(layers))


def gemm_peak_tflops(gpu: GpuProduct, s: EngineSettings, bf16_kernels: bool = False) -> float:
    """Dense tensor-core peak the linear layers run at: the weight format's if the GPU has it, else bf16.

    `bf16_kernels`: the format's vLLM kernels multiply at the bf16 rate whatever the GPU offers
    (`runs_on_bf16_kernels`)."""
    fmt = s.weight_format
    base = gpu.bf16_tflops / (2.0 if s.dtype == "float32" else 1.0)  # float32 runs as TF32
    if bf16_kernels:
        return base
    if fmt in (WeightFormat.FP8, WeightFormat.W8A8) and gpu.fp8_tflops is not None:
        return gpu.fp8_tflops
    if fmt == WeightFormat.W8A8:
        return 2.0 * gpu.bf16_tflops  # INT8 tensor cores on GPUs without FP8
    if fmt in (WeightFormat.NVFP4, WeightFormat.MXFP4) and gpu.fp4_tflops is not None:
        return gpu.fp4_tflops
    return base  # weight-only int4/fp8 kernels (Marlin) dequantise into bf16 GEMMs


def runs_on_bf16_kernels(f: ModelFacts, s: EngineSettings, efficiency: Efficiency) -> bool:
    """Whether vLLM's kernels for these weights multiply at the bf16 rate though the GPU has faster tensor cores.

    * FP8 with one scale per block (DeepSeek's and Qwen's FP8 releases): the kernels rescale every 128-wide slice of
      the reduction, and vLLM's own benchmarks measure them below torch's bf16 GEMMs at every batch size
      (Efficiency.block_fp8_on_bf16_peak cites them). Per-tensor FP8 (online `--quantization fp8`, ModelOpt
      exports) reaches the FP8 rate.
    * MXFP4 (gpt-oss): vLLM's default MXFP4 MoE backends keep the activations in bf16, on Blackwell too; FP4 or FP8
      activations are an opt-in (Efficiency.mxfp4_on_bf16_peak cites the selection)."""
    if s.weight_format == WeightFormat.FP8:
        return efficiency.block_fp8_on_bf16_peak and f.quantization is not None and f.quantization.block is not None
    return efficiency.mxfp4_on_bf16_peak and s.weight_format == WeightFormat.MXFP4


def has_performance_figures(gpu: GpuProduct) -> bool:
    return gpu.hbm_tb_per_s > 0 and gpu.bf16_tflops > 0 and gpu.link_gb_per_s > 0


@dataclass(frozen=True)
class StepTerms:
    """Where one engine step's time goes, seconds."""

    linear: float  # GEMMs: weights streamed, or the FLOPs of the tokens, whichever binds
    attention: float  # the KV cache read, or the attention FLOPs
    communication: float  # tensor-parallel all-reduces
    overhead: float  # fixed per step and per running sequence (CPU: scheduling, sampling, detokenising)

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.communication + self.overhead


def _chunks(prefill_tokens: float, prompts: float | None) -> float:
    """Prompts a step's prefill tokens belong to: one by default when there are any."""
    return (1.0 if prefill_tokens > 0 else 0.0) if prompts is None else prompts


def _roofline(memory_s: float, compute_s: float, overlap: float) -> float:
    """Time of an operation bounded by memory and compute: the larger, plus the share of the smaller that real
    kernels do not hide (near the ridge point neither unit runs at its peak)."""
    return max(memory_s, compute_s) + overlap * min(memory_s, compute_s)


# --- one replica --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replica:
    """One vLLM engine (TP × PP GPUs) with its step-time model. Build it with build_replica()."""

    settings: EngineSettings
    stages: tuple[StageCost, ...]
    hidden_bytes: float  # one token's hidden state: the all-reduce and hand-off message per token
    experts: int
    experts_per_token: int
    sliding_window: int | None
    hbm_bytes_per_s: float  # achieved
    gemm_flops_per_s: float  # achieved
    attention_flops_per_s: float  # achieved
    link_bytes_per_s: float  # achieved, per direction
    hand_offs: tuple[tuple[float, float], ...]  # per stage boundary: (latency s, bytes/s)
    efficiency: Efficiency
    kv_blocks: int | None = None  # None: the KV cache is not a limit
    kv_layout: KVLayout | None = None
    scheduler_steps: int = 1  # vLLM 0.6-0.9 --num-scheduler-steps: decode steps run back to back
    calibrated: bool = True
    family: str = "dense"  # perf.uncertainty's architecture family: which held-out errors bound this replica
    # Measured speed over the roofline's (see `scaled`): 1.0 is the model as built; 1.4 a step part 40 % slower.
    prefill_scale: float = 1.0
    decode_scale: float = 1.0
    # Set by `measured`: how well the deployment's metrics know those scales, as a factor on the slow edge. None:
    # the scales are not measured, and the model's cross-source interval bounds its error (perf.load).
    speed_slack: float | None = None

    @cached_property
    def distinct_stages(self) -> tuple[tuple[StageCost, int], ...]:
        """Each distinct stage cost with how many stages share it."""
        counts: dict[StageCost, int] = {}
        for st in self.stages:
            counts[st] = counts.get(st, 0) + 1
        return tuple(counts.items())

    @property
    def max_num_seqs(self) -> int:
        return self.settings.max_num_seqs

    @property
    def max_num_batched_tokens(self) -> int:
        return self.settings.max_num_batched_tokens

    def with_limits(self, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None) -> Replica:
        """The same replica under other scheduler limits (the static costs do not depend on them)."""
        settings = replace(
            self.settings,
            max_num_seqs=max_num_seqs or self.settings.max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens or self.settings.max_num_batched_tokens,
        )
        return replace(self, settings=settings)

    def scaled(self, prefill: float, decode: float) -> Replica:
        """The same replica with its step split in two parts and each part's time multiplied: the decode part
        (a step that only decodes its running sequences, weight reads and per-step overhead included) by
        `decode`, and what prompt tokens add to a step on top of that by `prefill`. This is how a deployment's
        observed speed corrects the model (scaling.calibration), and how a simulator runs replicas at another
        speed than the model believes (bench/autoscale.py --model-error). (1, 1) is the model itself, exactly."""
        if not (prefill > 0 and decode > 0 and math.isfinite(prefill) and math.isfinite(decode)):
            raise ValueError(f"speed factors must be positive and finite, not prefill {prefill}, decode {decode}")
        return replace(self, prefill_scale=float(prefill), decode_scale=float(decode))

    def measured(self, prefill: float, decode: float, slack: float) -> Replica:
        """`scaled` by factors this deployment's own metrics measured (scaling.calibration), known to within
        `slack` (≥ 1: e^(the estimate's half-width)). Its slow edges are then the within-deployment intervals
        times `slack`, never wider than the model's own (perf.load)."""
        if not (slack >= 1.0 and math.isfinite(slack)):
            raise ValueError(f"a measured speed's slack must be a finite factor of at least 1, not {slack}")
        return replace(self.scaled(prefill, decode), speed_slack=float(slack))

    # -- the step --------------------------------------------------------------------------------------------------

    def _routed_fraction(self, tokens: float) -> float:
        if not self.experts or tokens <= 0:
            return 0.0
        untouched: float = (1.0 - self.experts_per_token / self.experts) ** tokens
        return 1.0 - untouched

    def _stage_seconds(
        self, st: StageCost, decode: float, context: float, *, prefill: float, start: float, prompts: float
    ) -> float:
        return self._stage_terms(st, decode, context, prefill=prefill, start=start, prompts=prompts).total

    def _stage_terms(
        self, st: StageCost, decode: float, context: float, *, prefill: float, start: float, prompts: float
    ) -> StepTerms:
        tokens = decode + prefill
        e = self.efficiency
        weights = st.dense_weight_bytes + st.head_weight_bytes
        experts = st.expert_weight_bytes * self._routed_fraction(tokens)
        flops = st.layer_flops_per_token * tokens + st.head_flops_per_token * (decode + prompts)
        linear = _roofline(
            weights / self.hbm_bytes_per_s + experts / (self.hbm_bytes_per_s * e.moe_hbm),
            flops / self.gemm_flops_per_s,
            e.roofline_overlap,
        )
        chunk = prefill / prompts if prompts else 0.0
        full_pairs = decode * context + prefill * (start + chunk / 2)
        full_kv = decode * context + prompts * start + prefill
        window = self.sliding_window or math.inf
        sliding_pairs = decode * min(context, window) + prefill * min(start + chunk / 2, window)
        sliding_kv = decode * min(context, window) + prompts * min(start, window) + prefill
        kv_bytes = (
            st.full_kv_bytes_per_token * full_kv
            + st.sliding_kv_bytes_per_token * sliding_kv
            + st.state_bytes_per_seq * (decode + prompts)
        )
        attention_flops = st.full_attention_flops_per_pair * full_pairs + st.sliding_attention_flops_per_pair * (
            sliding_pairs
        )
        attention = _roofline(
            kv_bytes / (self.hbm_bytes_per_s * e.attention_hbm),
            attention_flops / self.attention_flops_per_s,
            e.roofline_overlap,
        )
        comm = 0.0
        if st.allreduces:
            tp = self.settings.tensor_parallel_size
            ring = 2.0 * (tp - 1) / tp * tokens * self.hidden_bytes / self.link_bytes_per_s
            comm = st.allreduces * (e.allreduce_latency_s + ring)
        return StepTerms(linear=linear, attention=attention, communication=comm, overhead=0.0)

    def step_terms(
        self,
        decode_seqs: float,
        mean_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_start: float = 0.0,
        prefill_prompts: float | None = None,
    ) -> StepTerms:
        """step_seconds() split into its terms, for a replica without pipeline stages (PP = 1): where a step's time
        goes (bench/step_breakdown.py, docs/performance-model.md)."""
        if self.settings.pipeline_parallel_size != 1:
            raise ValueError("step_terms() splits single-stage steps only (PP = 1)")
        chunks = _chunks(prefill_tokens, prefill_prompts)
        terms = self._stage_terms(
            self.stages[0],
            decode_seqs,
            mean_context_tokens,
            prefill=prefill_tokens,
            start=prefill_start,
            prompts=chunks,
        )
        return replace(terms, overhead=self._overhead(decode_seqs, chunks))

    def _overhead(self, decode: float, chunks: float) -> float:
        """The step's CPU time: fixed, plus a share for every sequence that produces a token or a chunk."""
        return self.efficiency.step_overhead_s + self.efficiency.seq_overhead_s * (decode + chunks)

    def step_seconds(
        self,
        decode_seqs: float,
        mean_context_tokens: float,
        prefill_tokens: float = 0.0,
        prefill_start: float = 0.0,
        prefill_prompts: float | None = None,
    ) -> float:
        """One engine step: `decode_seqs` sequences each decode a token over `mean_context_tokens` of context,
        and `prefill_tokens` prompt tokens (chunks of `prefill_prompts` prompts, default 1, each with
        `prefill_start` tokens already in the KV cache) are prefilled alongside.

        With PP, the running sequences spread over up to PP micro-batches and the chunk rides in one of them;
        the result is the time until that micro-batch has its next token (the prompt's view).
        """
        return self.step_times(decode_seqs, mean_context_tokens, prefill_tokens, prefill_start, prefill_prompts)[0]

    def step_times(
        self,
        decode: float,
        context: float,
        prefill: float = 0.0,
        start: float = 0.0,
        prompts: float | None = None,
    ) -> tuple[float, float]:
        """(the chunk-carrying micro-batch's step, the pipeline's pace). They differ with PP only: the chunk's
        micro-batch waits for it at every stage, while the others keep flowing and lose only the time the chunk
        adds to the busiest stage, which is what a prompt costs the pipeline's throughput."""
        p, d = self.prefill_scale, self.decode_scale
        if p == 1.0 and d == 1.0:
            return self._model_step_times(decode, context, prefill, start, prompts)
        plain = self._model_step_times(decode, context)
        if prefill <= 0 and not prompts:
            return d * plain[0], d * plain[1]
        loaded = self._model_step_times(decode, context, prefill, start, prompts)
        return d * plain[0] + p * (loaded[0] - plain[0]), d * plain[1] + p * (loaded[1] - plain[1])

    def _model_step_times(
        self,
        decode: float,
        context: float,
        prefill: float = 0.0,
        start: float = 0.0,
        prompts: float | None = None,
    ) -> tuple[float, float]:
        """step_times as the roofline gives it, before any speed factor."""
        chunks = _chunks(prefill, prompts)
        overhead = self._overhead(decode, chunks)
        pp = self.settings.pipeline_parallel_size
        if pp == 1:
            one = self._stage_seconds(self.stages[0], decode, context, prefill=prefill, start=start, prompts=chunks)
            return one + overhead, one + overhead
        micro = min(float(pp), max(1.0, decode + chunks))
        share = decode / micro
        plain_sum = loaded_sum = period = 0.0
        for st, count in self.distinct_stages:  # most stages are identical: price each kind once
            plain = self._stage_seconds(st, share, context, prefill=0.0, start=0.0, prompts=0.0)
            loaded = self._stage_seconds(st, share, context, prefill=prefill, start=start, prompts=chunks)
            plain_sum, loaded_sum = plain_sum + count * plain, loaded_sum + count * loaded
            period = max(period, (micro - 1) * plain + loaded)

        def hand_offs(tokens: float) -> float:
            return sum(latency + tokens * self.hidden_bytes / rate for latency, rate in self.hand_offs)

        carrier = max(loaded_sum + hand_offs(share + prefill), period) + overhead
        pace = max(plain_sum + hand_offs(share), period) + overhead
        return carrier, pace

    def decode_step_seconds(self, batch_size: float, mean_context_tokens: float) -> float:
        """A step with `batch_size` sequences decoding and nothing to prefill: the inter-token latency."""
        return self.step_seconds(batch_size, mean_context_tokens)

    def prefill_seconds(self, prompt_tokens: int, decode_seqs: int = 0, mean_context_tokens: float = 0.0) -> float:
        """Time to prefill one prompt from its first chunk to its first token, chunked by the token budget left
        after `decode_seqs` decoding sequences (each chunk step also decodes them)."""
        budget = max(1, self.max_num_batched_tokens - decode_seqs)
        total, start = 0.0, 0
        while start < prompt_tokens:
            chunk = min(budget, prompt_tokens - start)
            total += self.step_seconds(decode_seqs, mean_context_tokens, chunk, start)
            start += chunk
        return total

    def scheduled_prefill_seconds(
        self, prompt_tokens: int, decode_seqs: int, mean_context_tokens: float, co_scheduled_tokens: float
    ) -> float:
        """The least time from a prompt's first scheduling to its first token (what vLLM's request_prefill_time
        measures) when `co_scheduled_tokens` of other prompts wait to be scheduled with it: vLLM packs them into
        the same token budget, so a prompt that fits takes one step carrying all of them, or a full step when
        they overflow it. A prompt longer than the budget takes at least its own chunk steps: where it falls in
        the queue, and whether later prompts fill its last step, is not known, and guessing it long would make
        a slow deployment read as fast (scaling.calibration divides by this)."""
        budget = max(1, self.max_num_batched_tokens - decode_seqs)
        if prompt_tokens > budget:
            return self.prefill_seconds(prompt_tokens, decode_seqs, mean_context_tokens)
        tokens = min(float(budget), prompt_tokens + max(0.0, co_scheduled_tokens))
        return self.step_seconds(decode_seqs, mean_context_tokens, round(tokens))

    def running_capacity(self, input_tokens: int, output_tokens: int) -> int:
        """Sequences of this workload that run at once: max_num_seqs, or fewer when the KV cache holds fewer at
        their mean length (vLLM allocates blocks as sequences grow, so the mean, not the longest, is what binds
        in steady state)."""
        if self.kv_blocks is None or self.kv_layout is None:
            return self.max_num_seqs
        mean_len = math.ceil(input_tokens + output_tokens / 2)
        per_request = blocks_per_request(self.kv_layout, self.settings, mean_len)
        return max(1, min(self.max_num_seqs, self.kv_blocks // max(1, per_request)))


def build_replica(
    f: ModelFacts,
    settings: EngineSettings,
    gpu: GpuProduct,
    memory: ReplicaMemory | None = None,
    *,
    gpus_per_node: int = 8,
    efficiency: Efficiency = VLLM,
    scheduler_steps: int = 1,
) -> Replica:
    """The step-time model of one replica. `memory` (from memory.replica_memory) bounds the running batch by
    the KV cache; without it only max_num_seqs does."""
    if not has_performance_figures(gpu):
        raise ValueError(f"{gpu.product} has no bandwidth or FLOP/s figures; the performance model cannot run")
    pp = settings.pipeline_parallel_size
    stages = _stage_costs(f, replace(settings, max_num_seqs=1, max_num_batched_tokens=1, max_model_len=1))
    link = gpu.link_gb_per_s * GIGA * efficiency.link
    stages_per_node = max(1, gpus_per_node // settings.tensor_parallel_size)
    hand_offs = tuple(
        (INTER_NODE_LATENCY_S, INTER_NODE_GB_PER_S * GIGA * efficiency.link)
        if (boundary + 1) % stages_per_node == 0
        else (efficiency.allreduce_latency_s, link)
        for boundary in range(pp - 1)
    )
    return Replica(
        settings=settings,
        stages=stages,
        hidden_bytes=float(f.hidden_size * settings.act_bytes),
        experts=f.moe.num_experts if f.moe is not None else 0,
        experts_per_token=f.moe.experts_per_token if f.moe is not None else 0,
        sliding_window=f.sliding_window,
        hbm_bytes_per_s=gpu.hbm_tb_per_s * TERA * efficiency.hbm,
        gemm_flops_per_s=gemm_peak_tflops(gpu, settings, runs_on_bf16_kernels(f, settings, efficiency))
        * TERA
        * efficiency.compute,
        attention_flops_per_s=gpu.bf16_tflops * TERA * efficiency.compute,
        link_bytes_per_s=link,
        hand_offs=hand_offs,
        efficiency=efficiency,
        kv_blocks=memory.blocks if memory is not None else None,
        kv_layout=memory.binding.layout if memory is not None else None,
        scheduler_steps=scheduler_steps,
        calibrated=gpu.product in CALIBRATED_PRODUCTS,
        family=family_of(f),
    )
