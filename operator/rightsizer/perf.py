"""The performance model: how fast one vLLM replica serves, from the bytes it moves and the FLOPs it computes.

A roofline per engine step, summed per operation and per pipeline stage::

    linear    = max(weight bytes / HBM,  GEMM FLOPs / dense peak)        weights are read once per step
    attention = max(KV bytes / HBM,      attention FLOPs / bf16 peak)     KV of every decoding sequence is read
    comm      = all-reduces × (latency + 2(TP−1)/TP × tokens × hidden × bytes / link)      (TP > 1 only)
    stage     = linear + attention + comm
    step      = max(Σ stages + hand-offs, micro-batches × slowest stage) + per-step overhead     (PP > 1)

HBM, peak FLOP/s and link bandwidth come from facts/gpus.py, each scaled by a fitted efficiency
(facts/perf_calibration.py). Weight bytes per rank follow the parameter inventory exactly as memory.py counts
them (per TP shard, per pipeline stage, in the checkpoint's format); for MoE layers only the experts the batch's
tokens are routed to are read: a fraction 1 − (1 − k/E)^tokens. The embedding is a lookup and is not streamed.
GEMM FLOPs use the FP8 (or FP4) tensor-core peak when the weights are in that format and the GPU has it.

vLLM's continuous batching on top of the step, in steady state (a fluid model):

* A decode step serves every running sequence; running = min(load, max_num_seqs, KV capacity at the workload's
  mean length P + O/2). Load beyond that waits for a slot: `concurrency − capacity` requests in a closed loop,
  an Erlang-C queue (halved for fixed-length requests) for Poisson arrivals.
* Chunked prefill (always on in V1): a prompt of P tokens is processed in chunks of at most
  max_num_batched_tokens − running tokens, each inside a decode step, so those steps take longer. With ρ the
  share of time spent on other requests' prefills, the mean inter-token latency is decode_step / (1 − ρ);
  per-token ITL is two-valued (plain decode steps and steps that carry a chunk), so ITL p95 jumps to the
  chunk step once more than 5 % of steps carry one.
* TTFT = request overhead + the step in progress (uniform residual) + waiting behind other prompts (M/D/1 on
  the prefill work) + the prompt's own chunk steps (+ the admission queue).

Two ways in:

Simulation-friendly (for a discrete-event simulator or a fake vLLM server that does its own scheduling)::

    replica = build_replica(facts, settings, gpu, memory)
    replica.decode_step_seconds(batch_size=32, mean_context_tokens=1500)
    replica.prefill_seconds(prompt_tokens=2000)                    # an idle replica, chunked by the budget
    replica.step_seconds(decode_seqs=31, mean_context_tokens=1500, prefill_tokens=2000, prefill_start=0)
    replica.running_capacity(input_tokens=1000, output_tokens=1000)   # sequences that run at once

Steady-state predictions (for sizing and the plan)::

    predict(replica, Traffic(input_tokens=1000, output_tokens=250, request_rate=3.0))  # or concurrency=...
    max_request_rate(replica, 1000, 250, Slo(ttft_p95_s=0.5, itl_p95_s=0.05))
    largest_batch_within(replica, 1000, 250, Slo(itl_p95_s=0.05))      # the max_num_seqs cap

All times are seconds. Pure: no I/O, deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from rightsizer.api.v1alpha1.plan import PredictedPerformance
from rightsizer.facts.gpus import GpuProduct
from rightsizer.facts.perf_calibration import (
    CALIBRATED_PRODUCTS,
    INTER_NODE_GB_PER_S,
    INTER_NODE_LATENCY_S,
    VLLM,
    Efficiency,
)
from rightsizer.memory import (
    EngineSettings,
    KVLayout,
    ReplicaMemory,
    _bytes_per_param,  # the exact bytes per parameter of each format; shared so weights are counted once
    _expert_padding,
    attention_bytes_per_token,
    blocks_per_request,
    linear_state_bytes,
)
from rightsizer.modelcfg import LayerKind, ModelFacts, QuantFormat
from rightsizer.params import groups_on_stage, inventory, per_rank_count, pipeline_layers

if TYPE_CHECKING:  # sizing imports this module; the adapter below only reads its objects
    from rightsizer.sizing import Candidate, SizingRequest

TERA = 1e12
GIGA = 1e9
# Keep a replica below this share of the request rate at which its queue would grow without bound: the fluid
# model's latencies are means, and real arrivals are burstier than Poisson near saturation.
UTILIZATION_CEILING = 0.9
_RHO_MAX = 0.999  # prefill share of time beyond which the replica is saturated
_BISECTIONS = 40
_TOLERANCE = 1e-3  # relative: searches stop here (the model itself is good to ~10%)


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
    padding = _expert_padding(f, s)
    dense = experts = head = 0.0
    layer_params = expert_params = head_params = 0.0
    for g in groups_on_stage(groups, stage, pp, layers):
        if g.module == "embed_tokens":
            continue  # a lookup: one row per token, not streamed
        count = per_rank_count(g, f, tp)
        size = count * _bytes_per_param(g, s)
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


@lru_cache(maxsize=1024)
def _stage_costs(f: ModelFacts, s: EngineSettings) -> tuple[StageCost, ...]:
    """Every stage's costs (memoised: sizing builds a replica per shape several times)."""
    layers = pipeline_layers(f.num_layers, s.pipeline_parallel_size)
    return tuple(stage_cost(f, s, i, stage_layers) for i, stage_layers in enumerate(layers))


def gemm_peak_tflops(gpu: GpuProduct, s: EngineSettings) -> float:
    """Dense tensor-core peak the linear layers run at: the weight format's if the GPU has it, else bf16."""
    fmt = s.weight_format
    base = gpu.bf16_tflops / (2.0 if s.dtype == "float32" else 1.0)  # float32 runs as TF32
    if fmt in (QuantFormat.FP8, QuantFormat.W8A8) and gpu.fp8_tflops is not None:
        return gpu.fp8_tflops
    if fmt == QuantFormat.W8A8:
        return 2.0 * gpu.bf16_tflops  # INT8 tensor cores on GPUs without FP8
    if fmt in (QuantFormat.NVFP4, QuantFormat.MXFP4) and gpu.fp4_tflops is not None:
        return gpu.fp4_tflops
    return base  # weight-only int4/fp8 kernels (Marlin) dequantise into bf16 GEMMs


def has_performance_figures(gpu: GpuProduct) -> bool:
    return gpu.hbm_tb_per_s > 0 and gpu.bf16_tflops > 0 and gpu.link_gb_per_s > 0


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

    # -- the step --------------------------------------------------------------------------------------------------

    def _routed_fraction(self, tokens: float) -> float:
        if not self.experts or tokens <= 0:
            return 0.0
        untouched: float = (1.0 - self.experts_per_token / self.experts) ** tokens
        return 1.0 - untouched

    def _stage_seconds(
        self, st: StageCost, decode: float, context: float, *, prefill: float, start: float, prompts: float
    ) -> float:
        tokens = decode + prefill
        weights = st.dense_weight_bytes + st.head_weight_bytes + st.expert_weight_bytes * self._routed_fraction(tokens)
        flops = st.layer_flops_per_token * tokens + st.head_flops_per_token * (decode + prompts)
        linear = max(weights / self.hbm_bytes_per_s, flops / self.gemm_flops_per_s)
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
        attention = max(kv_bytes / self.hbm_bytes_per_s, attention_flops / self.attention_flops_per_s)
        comm = 0.0
        if st.allreduces:
            tp = self.settings.tensor_parallel_size
            ring = 2.0 * (tp - 1) / tp * tokens * self.hidden_bytes / self.link_bytes_per_s
            comm = st.allreduces * (self.efficiency.allreduce_latency_s + ring)
        return linear + attention + comm

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
        return self._step(decode_seqs, mean_context_tokens, prefill_tokens, prefill_start, prefill_prompts)[0]

    def _step(
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
        chunks = (1.0 if prefill > 0 else 0.0) if prompts is None else prompts
        overhead = self.efficiency.step_overhead_s
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
        gemm_flops_per_s=gemm_peak_tflops(gpu, settings) * TERA * efficiency.compute,
        attention_flops_per_s=gpu.bf16_tflops * TERA * efficiency.compute,
        link_bytes_per_s=link,
        hand_offs=hand_offs,
        efficiency=efficiency,
        kv_blocks=memory.blocks if memory is not None else None,
        kv_layout=memory.binding.layout if memory is not None else None,
        scheduler_steps=scheduler_steps,
        calibrated=gpu.product in CALIBRATED_PRODUCTS,
    )


# --- steady state under load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Requests of fixed length, either from `concurrency` clients that each send the next request when the
    last one finishes (a closed loop, as benchmark tools run) or arriving at `request_rate` per second (Poisson)."""

    input_tokens: int
    output_tokens: int
    concurrency: float | None = None
    request_rate: float | None = None


@dataclass(frozen=True)
class Quantiles:
    mean: float
    p50: float
    p95: float


@dataclass(frozen=True)
class Slo:
    ttft_p95_s: float | None = None
    itl_p95_s: float | None = None

    @property
    def empty(self) -> bool:
        return self.ttft_p95_s is None and self.itl_p95_s is None

    def met_by(self, p: Prediction) -> bool:
        if p.saturated:
            return False
        ttft_ok = self.ttft_p95_s is None or p.ttft.p95 <= self.ttft_p95_s
        return ttft_ok and (self.itl_p95_s is None or p.itl.p95 <= self.itl_p95_s)


@dataclass(frozen=True)
class Prediction:
    traffic: Traffic
    running: float  # sequences in the running batch
    capacity: int  # running slots: max_num_seqs or the KV cache at the workload's mean length
    ttft: Quantiles
    itl: Quantiles
    request_rate: float  # requests completed per second
    output_tokens_per_second: float
    decode_step_s: float  # a step without prefill at this batch
    chunk_step_s: float  # a step that carries a prefill chunk
    prefill_share: float  # ρ: share of time spent on other requests' prefill chunks
    saturated: bool  # arrivals exceed what the replica serves: the waiting queue grows without bound


@dataclass(frozen=True)
class _Cycle:
    """The steady state at a running batch and a rate of other requests' prompts."""

    decode_step: float
    chunk_step: float
    own_prefill: float  # this request's chunk steps
    prefill_share: float
    itl: Quantiles
    residual: Quantiles  # the step (or multi-step burst) in progress at arrival
    prefill_wait: Quantiles  # behind other prompts
    saturated: bool

    def ttft(self, overhead: float, admission: Quantiles) -> Quantiles:
        fixed = overhead + self.own_prefill
        parts = (self.residual, self.prefill_wait, admission)
        mean = fixed + sum(q.mean for q in parts)
        # A quantile of a sum: the largest of (one part at its quantile, the others at their means).
        p50 = fixed + max(sum(q.mean for q in parts) - q.mean + q.p50 for q in parts)
        p95 = fixed + max(sum(q.mean for q in parts) - q.mean + q.p95 for q in parts)
        return Quantiles(mean, p50, p95)


_ZERO = Quantiles(0.0, 0.0, 0.0)


def _exponential_tail(probability: float, scale: float) -> Quantiles:
    """A wait that is 0 with probability 1 − `probability` and else exponential with mean `scale`."""

    def quantile(q: float) -> float:
        return scale * math.log(probability / (1 - q)) if probability > 1 - q else 0.0

    return Quantiles(probability * scale, quantile(0.5), quantile(0.95))


def _uniform_residual(busy: float, length: float) -> Quantiles:
    """Time left of the step in progress: 0 when idle (probability 1 − busy), else uniform on [0, length]."""

    def quantile(q: float) -> float:
        return length * (1 - (1 - q) / busy) if busy > 1 - q else 0.0

    return Quantiles(busy * length / 2, quantile(0.5), quantile(0.95))


def _cycle(r: Replica, p_in: int, p_out: int, *, running: float, others_rate: float, busy: float) -> _Cycle:
    context = p_in + p_out / 2
    budget = max(1.0, r.max_num_batched_tokens - running)
    chunk = min(float(p_in), budget)
    chunks = math.ceil(p_in / chunk)
    decode = r._step(running, context)[1]
    last = p_in - (chunks - 1) * chunk
    own, paced = r._step(running, context, last, (chunks - 1) * chunk)
    if chunks > 1:  # the full chunks at their mean start: attention work is linear in the start
        full_own, full_paced = r._step(running, context, chunk, chunk * (chunks - 2) / 2)
        own, paced = own + (chunks - 1) * full_own, paced + (chunks - 1) * full_paced
    # What a prompt costs the running sequences: the time its chunks add to the pipeline's pace.
    extra = max(0.0, paced - chunks * decode)
    share = others_rate * extra
    saturated = share >= _RHO_MAX
    share = min(share, _RHO_MAX)
    itl_mean = decode / (1 - share)
    carrying = others_rate * chunks * itl_mean  # share of steps that carry another prompt's chunk
    chunk_step = paced / chunks

    def itl_quantile(q: float) -> float:
        if carrying >= 1:
            return itl_mean
        return chunk_step if carrying > 1 - q else decode

    itl = Quantiles(itl_mean, itl_quantile(0.5), itl_quantile(0.95))
    residual = _uniform_residual(busy, r.scheduler_steps * itl_mean)
    # M/D/1 on prefill work: wait behind others' chunks, P(wait) = ρ, conditional mean S / (2(1 − ρ)).
    wait = _exponential_tail(share, extra / (2 * (1 - share))) if share > 0 else _ZERO
    return _Cycle(decode, chunk_step, own, share, itl, residual, wait, saturated)


def _erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load `load` (< servers)."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def _crossing(f: Callable[[float], float], low: float, high: float) -> float:
    """A root of f with f(low) ≤ 0 ≤ f(high) (one crossing in between), by false position (Illinois variant),
    to a residual of _TOLERANCE relative to the root."""
    f_low, f_high = f(low), f(high)
    if f_low >= 0:
        return low
    if f_high <= 0:
        return high
    side = 0
    x = low
    for _ in range(_BISECTIONS):
        x = (low * f_high - high * f_low) / (f_high - f_low)
        fx = f(x)
        if abs(fx) <= _TOLERANCE * abs(x) or high - low <= _TOLERANCE * abs(high):
            break
        if fx < 0:
            low, f_low = x, fx
            if side == -1:
                f_high /= 2
            side = -1
        else:
            high, f_high = x, fx
            if side == 1:
                f_low /= 2
            side = 1
    return x


def _closed_loop(r: Replica, t: Traffic, concurrency: float) -> Prediction:
    cap = r.running_capacity(t.input_tokens, t.output_tokens)
    running = min(concurrency, float(cap))
    busy = min(1.0, max(0.0, concurrency - 1))
    others = (running - 1) / running if running > 1 else 0.0
    out = t.output_tokens

    def state(rate: float) -> tuple[_Cycle, float]:
        c = _cycle(r, t.input_tokens, out, running=running, others_rate=rate * others, busy=busy)
        if concurrency <= cap:
            e2e = c.ttft(r.efficiency.request_overhead_s, _ZERO).mean + (out - 1) * c.itl.mean
            return c, concurrency / e2e
        # Every slot is busy: a freed slot admits the next queued request at the following step.
        slot = c.residual.mean + c.prefill_wait.mean + c.own_prefill + (out - 1) * c.itl.mean
        return c, running / slot

    # The rate the cycle sustains falls as the rate rises (more prefill interference): one crossing.
    rate = _crossing(lambda x: x - state(x)[1], 0.0, state(0.0)[1])
    c, _ = state(rate)
    queued = max(0.0, concurrency - cap)
    wait = queued / rate if rate > 0 else 0.0  # Little's law on the queue; the same for every request
    admission = Quantiles(wait, wait, wait)
    return Prediction(
        traffic=t,
        running=running,
        capacity=cap,
        ttft=c.ttft(r.efficiency.request_overhead_s, admission),
        itl=c.itl,
        request_rate=rate,
        output_tokens_per_second=rate * out,
        decode_step_s=c.decode_step,
        chunk_step_s=c.chunk_step,
        prefill_share=c.prefill_share,
        saturated=c.saturated,
    )


def _slot(c: _Cycle, output_tokens: int) -> float:
    """Mean time a request holds a running slot: its prefill (and the wait behind others') and its decode."""
    return c.own_prefill + c.prefill_wait.mean + (output_tokens - 1) * c.itl.mean


def _open_cycle(r: Replica, t: Traffic, rate: float, running: float) -> _Cycle:
    return _cycle(r, t.input_tokens, t.output_tokens, running=running, others_rate=rate, busy=1 - math.exp(-running))


def _open_loop(r: Replica, t: Traffic, rate: float) -> Prediction:
    cap = r.running_capacity(t.input_tokens, t.output_tokens)
    out = t.output_tokens
    c = _open_cycle(r, t, rate, float(cap))
    # Little's law: running = rate × slot(running). Stable only if a full replica keeps up (else the queue grows).
    saturated = c.saturated or rate * _slot(c, out) >= cap
    running = float(cap)
    if not saturated:
        running = _crossing(lambda b: b - rate * _slot(_open_cycle(r, t, rate, b), out), 0.0, float(cap))
        c = _open_cycle(r, t, rate, running)
    admission = _ZERO
    if not saturated:
        slot = _slot(c, out)
        waits = _erlang_c(cap, running)
        # Fixed-length requests: half the M/M/c wait (Allen-Cunneen with no service-time variance).
        admission = _exponential_tail(waits, 0.5 * slot / (cap - running))
    return Prediction(
        traffic=t,
        running=running,
        capacity=cap,
        ttft=c.ttft(r.efficiency.request_overhead_s, admission),
        itl=c.itl,
        request_rate=rate,
        output_tokens_per_second=rate * out,
        decode_step_s=c.decode_step,
        chunk_step_s=c.chunk_step,
        prefill_share=c.prefill_share,
        saturated=saturated,
    )


def predict(r: Replica, t: Traffic) -> Prediction:
    """Steady-state latency and throughput of one replica under `t` (closed loop or Poisson arrivals)."""
    if t.input_tokens < 1 or t.output_tokens < 1:
        raise ValueError("input_tokens and output_tokens must be at least 1")
    if t.concurrency is not None:
        return _closed_loop(r, t, max(t.concurrency, 1e-9))
    if t.request_rate is not None:
        return _open_loop(r, t, t.request_rate)
    raise ValueError("Traffic needs a concurrency or a request_rate")


# --- capacity within an SLO ---------------------------------------------------------------------------------------


def _largest(meets: Callable[[float], bool], low: float, high: float, integer: bool) -> float:
    """The largest x in [low, high] with meets(x), for a predicate that holds up to some point; low if none."""
    if meets(high):
        return high
    for _ in range(_BISECTIONS):
        if (integer and high - low <= 1) or (not integer and high - low <= _TOLERANCE * high):
            break
        mid = (low + high) // 2 if integer else (low + high) / 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


def saturation_rate(r: Replica, input_tokens: int, output_tokens: int) -> float:
    """Poisson arrival rate (req/s) at which one replica's queue starts to grow without bound: every running
    slot busy (running = capacity) and requests still arriving faster than slots free up."""
    cap = r.running_capacity(input_tokens, output_tokens)
    t = Traffic(input_tokens, output_tokens)
    solo = _cycle(r, input_tokens, output_tokens, running=1.0, others_rate=0.0, busy=0.0)
    bound = cap / _slot(solo, output_tokens)  # every slot at batch-1 speed: no replica serves faster
    return _crossing(lambda rate: rate * _slot(_open_cycle(r, t, rate, float(cap)), output_tokens) - cap, 0.0, bound)


def max_request_rate(r: Replica, input_tokens: int, output_tokens: int, slo: Slo) -> float:
    """Poisson arrivals per second one replica serves within `slo`, at most UTILIZATION_CEILING of saturation.
    0 when even a trickle of requests misses it."""
    ceiling = UTILIZATION_CEILING * saturation_rate(r, input_tokens, output_tokens)
    if slo.empty:
        return ceiling

    def meets(rate: float) -> bool:
        return slo.met_by(predict(r, Traffic(input_tokens, output_tokens, request_rate=rate)))

    floor = ceiling * 1e-3
    if not meets(floor):
        return 0.0
    return _largest(meets, floor, ceiling, integer=False)


def max_concurrency_within(r: Replica, input_tokens: int, output_tokens: int, slo: Slo) -> int:
    """Concurrent clients (closed loop) one replica serves within `slo`, at most its running capacity; 0 when
    not even one."""
    cap = r.running_capacity(input_tokens, output_tokens)

    def meets(n: float) -> bool:
        return slo.met_by(predict(r, Traffic(input_tokens, output_tokens, concurrency=n)))

    if not meets(1):
        return 0
    return int(_largest(meets, 1, cap, integer=True))


@dataclass(frozen=True)
class BatchLimit:
    """The largest max_num_seqs whose full batch keeps ITL p95 within the target, and the ITL there."""

    max_num_seqs: int
    itl_p95_s: float
    met: bool  # False: not even a batch of one meets the target (max_num_seqs is then 1)


@lru_cache(maxsize=256)
def largest_batch_within(r: Replica, input_tokens: int, output_tokens: int, itl_p95_s: float) -> BatchLimit:
    """Cap max_num_seqs so a full replica (max_num_seqs clients in a closed loop: the most prefill interference
    that batch can see) still meets the ITL p95 target."""

    def itl_at(n: float) -> float:
        replica = r.with_limits(max_num_seqs=int(n))
        return predict(replica, Traffic(input_tokens, output_tokens, concurrency=n)).itl.p95

    best = int(_largest(lambda n: itl_at(n) <= itl_p95_s, 1, r.max_num_seqs, integer=True))
    itl = itl_at(best)
    return BatchLimit(best, itl, itl <= itl_p95_s)


# --- the plan's record ----------------------------------------------------------------------------------------------


def performance_record(
    r: Replica, prediction: Prediction, slo: Slo, max_rate: float, max_concurrency: int
) -> PredictedPerformance:
    """The prediction as the plan reports it (milliseconds)."""
    load = prediction.traffic
    concurrency = load.concurrency if load.concurrency is not None else prediction.running
    return PredictedPerformance(
        concurrency=round(concurrency, 2),
        ttft_p50_ms=round(prediction.ttft.p50 * 1e3, 1),
        ttft_p95_ms=round(prediction.ttft.p95 * 1e3, 1),
        itl_p50_ms=round(prediction.itl.p50 * 1e3, 2),
        itl_p95_ms=round(prediction.itl.p95 * 1e3, 2),
        output_tokens_per_second=round(prediction.output_tokens_per_second, 1),
        max_request_rate=round(max_rate, 3),
        max_concurrency_within_slo=max_concurrency,
        meets_slo=slo.met_by(prediction),
        saturated=prediction.saturated,
        calibrated=r.calibrated,
    )


def clear_caches() -> None:
    """Forget memoised stage costs and capacities (for cold-start measurements)."""
    _stage_costs.cache_clear()
    _capacity.cache_clear()
    largest_batch_within.cache_clear()


# --- sizing's view: the default PerformanceHook ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def _capacity(r: Replica, input_tokens: int, output_tokens: int, slo: Slo) -> tuple[float, int]:
    """Request rate and concurrency one replica serves within `slo` (cached: sizing asks for each replica count)."""
    return (
        max_request_rate(r, input_tokens, output_tokens, slo),
        max_concurrency_within(r, input_tokens, output_tokens, slo),
    )


class SloPerformance:
    """sizing.PerformanceHook backed by this model, for GPUs with bandwidth and FLOP/s figures.

    Predictions use the declared workload's lengths (capped at max_model_len) and the load each replica carries:
    spec.workload.concurrency or .requestRate split over the replicas, or a full replica (max_num_seqs
    concurrent requests) when the workload declares neither.
    """

    def __init__(self, efficiency: Efficiency = VLLM) -> None:
        self.efficiency = efficiency

    def _replica(self, candidate: Candidate, request: SizingRequest) -> Replica | None:
        pool = candidate.shape.pool
        if not has_performance_figures(pool.gpu):
            return None
        return build_replica(
            request.facts,
            candidate.settings,
            pool.gpu,
            candidate.memory,
            gpus_per_node=pool.gpus_per_node,
            efficiency=self.efficiency,
        )

    @staticmethod
    def _lengths(candidate: Candidate, request: SizingRequest) -> tuple[int, int]:
        w, limit = request.spec.workload, candidate.settings.max_model_len
        prompt = min(w.input_tokens, limit - 1)
        return prompt, max(1, min(w.output_tokens, limit - prompt))

    @staticmethod
    def _slo(request: SizingRequest) -> Slo:
        slo = request.spec.slo
        return Slo(
            ttft_p95_s=slo.ttft_p95_ms / 1e3 if slo.ttft_p95_ms else None,
            itl_p95_s=slo.itl_p95_ms / 1e3 if slo.itl_p95_ms else None,
        )

    def batch_limit(self, candidate: Candidate, request: SizingRequest) -> BatchLimit | None:
        target = request.spec.slo.itl_p95_ms
        r = self._replica(candidate, request)
        if r is None or target is None:
            return None
        return largest_batch_within(r, *self._lengths(candidate, request), target / 1e3)

    def predict(self, candidate: Candidate, request: SizingRequest, replicas: int) -> PredictedPerformance | None:
        r = self._replica(candidate, request)
        if r is None:
            return None
        prompt, output = self._lengths(candidate, request)
        slo = self._slo(request)
        rate, concurrency = _capacity(r, prompt, output, slo)
        w, share = request.spec.workload, max(replicas, 1)
        if w.concurrency:
            traffic = Traffic(prompt, output, concurrency=w.concurrency / share)
        elif w.request_rate:
            traffic = Traffic(prompt, output, request_rate=w.request_rate / share)
        else:
            traffic = Traffic(prompt, output, concurrency=float(r.max_num_seqs))
        return performance_record(r, predict(r, traffic), slo, rate, concurrency)
