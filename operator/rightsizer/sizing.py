"""The plan search: every GPU pool × parallelism vLLM accepts, sized with vLLM's own memory accounting, and the
cheapest plan that serves the declared workload, with a reason for every choice.

Pure: a function of the spec, the model's facts and the pools' shapes (never of their momentary free capacity,
so the plan does not move when rightsizer's own pods land). Placement problems are the reconciler's business.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import MemoryBreakdown, Plan, PredictedPerformance
from rightsizer.errors import SizingError
from rightsizer.facts.vllm_profiles import GIB, VllmProfile, profile_for
from rightsizer.memory import (
    EngineSettings,
    ReplicaMemory,
    attention_bytes_per_token,
    blocks_per_request,
    replica_memory,
)
from rightsizer.modelcfg import ModelFacts
from rightsizer.parallelism import pipeline_parallel_problems, tensor_parallel_problems
from rightsizer.params import total_parameters
from rightsizer.pools import GpuPool, allowed, unknown_products
from rightsizer.quantization import WeightChoice, resolve_weights
from rightsizer.vllm_args import check_extra_args, server_args

MAX_NODES_PER_REPLICA = 8  # beyond this, pipeline bubbles make a replica impractical; refuse rather than plan it


@dataclass(frozen=True)
class SizingRequest:
    spec: LLMDeploymentSpec
    facts: ModelFacts
    pools: Sequence[GpuPool]


@dataclass(frozen=True)
class Shape:
    pool: GpuPool
    preference: int
    tp: int
    pp: int

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.gpus / self.pool.gpus_per_node))

    def label(self) -> str:
        return f"{self.pool.name} TP{self.tp}×PP{self.pp}"


@dataclass(frozen=True)
class Candidate:
    shape: Shape
    settings: EngineSettings
    memory: ReplicaMemory
    workload_concurrency: float  # sequences of the workload's length one replica holds at once
    replicas: int
    replicas_short: int  # replicas the workload needs beyond spec.replicas.max
    performance: PredictedPerformance | None = None

    def gpu_hours_per_hour(self) -> int:
        return max(self.replicas, 1) * self.shape.gpus

    def cost(self) -> float | None:
        price = self.shape.pool.price_per_gpu_hour
        return None if price is None else price * self.gpu_hours_per_hour()


@dataclass(frozen=True)
class Rejection:
    shape: Shape
    reason: str
    kv_gib: float | None = None  # KV memory left per GPU (negative: weights alone do not fit)
    longest_fitting_len: int | None = None


@dataclass
class SearchResult:
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


# A hook for the performance model: given a feasible candidate, predict latency and the request rate one replica
# sustains; sizing then also counts replicas for spec.workload.requestRate and prefers plans meeting spec.slo.
PerformanceHook = Callable[[Candidate, LLMDeploymentSpec], PredictedPerformance]


def _gib(value: float) -> str:
    return f"{value / GIB:.2f} GiB"


# --- candidate shapes -------------------------------------------------------------------------------------------


def _shapes(request: SizingRequest) -> list[Shape]:
    spec, facts = request.spec, request.facts
    pins = spec.gpu
    shapes = []
    for preference, pool in allowed(request.pools, spec.gpu.products):
        per_node = pool.gpus_per_node
        if pins.tensor_parallel_size is not None or pins.pipeline_parallel_size is not None:
            tp = pins.tensor_parallel_size or 1
            pp = pins.pipeline_parallel_size or 1
            shapes.append(Shape(pool, preference, tp, pp))
            continue
        for tp in range(1, per_node + 1):
            shapes.append(Shape(pool, preference, tp, 1))
        # Spanning nodes: TP fills each node with the widest degree the model accepts, PP strings the nodes.
        node_tp = max(
            (tp for tp in range(1, per_node + 1) if per_node % tp == 0 and not tensor_parallel_problems(facts, tp)),
            default=1,
        )
        max_nodes = min(pool.max_nodes or MAX_NODES_PER_REPLICA, MAX_NODES_PER_REPLICA)
        for nodes in range(2, max_nodes + 1):
            shapes.append(Shape(pool, preference, node_tp, nodes * per_node // node_tp))
    return shapes


def _shape_problems(shape: Shape, facts: ModelFacts) -> list[str]:
    problems = tensor_parallel_problems(facts, shape.tp) + pipeline_parallel_problems(facts, shape.pp)
    pool = shape.pool
    if shape.tp > pool.gpus_per_node:
        problems.append(f"TP{shape.tp} would span nodes of {pool.gpus_per_node} GPUs; keep TP within one node")
    elif shape.gpus > pool.gpus_per_node and shape.gpus % pool.gpus_per_node:
        problems.append(f"{shape.gpus} GPUs do not fill whole {pool.gpus_per_node}-GPU nodes")
    if pool.max_nodes is not None and shape.nodes > pool.max_nodes:
        problems.append(f"needs {shape.nodes} nodes, the pool has at most {pool.max_nodes}")
    return problems


# --- evaluating one shape -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Common:
    """Per-request inputs shared by every shape."""

    profile: VllmProfile
    weights: WeightChoice
    max_model_len: int
    workload_tokens: int
    kv_cache_dtype: str


def _settings(shape: Shape, common: _Common, spec: LLMDeploymentSpec, seqs: int, t_b: int) -> EngineSettings:
    utilization = spec.serving.gpu_memory_utilization or common.profile.default_gpu_memory_utilization
    return EngineSettings(
        tensor_parallel_size=shape.tp,
        pipeline_parallel_size=shape.pp,
        max_num_seqs=seqs,
        max_num_batched_tokens=t_b,
        max_model_len=common.max_model_len,
        gpu_memory_utilization=utilization,
        dtype=common.weights.dtype,
        kv_cache_dtype=common.kv_cache_dtype,
        weight_format=common.weights.format,
        group_size=common.weights.group_size,
        quantize_attention=common.weights.quantize_attention,
    )


def longest_fitting_len(memory: ReplicaMemory, settings: EngineSettings, limit: int) -> int:
    """The longest max_model_len for which one request still fits in the KV cache (0 if none)."""
    layout = memory.binding.layout
    low, high = 0, limit
    while low < high:
        mid = (low + high + 1) // 2
        if blocks_per_request(layout, settings, mid) <= memory.blocks:
            low = mid
        else:
            high = mid - 1
    return low


def _evaluate(shape: Shape, request: SizingRequest, common: _Common) -> Candidate | Rejection:
    problems = _shape_problems(shape, request.facts)
    if problems:
        return Rejection(shape, "; ".join(problems))
    spec, facts, gpu = request.spec, request.facts, shape.pool.gpu
    tier = common.profile.tier(gpu.torch_total_gib, gpu.product)
    seqs, t_b = tier.max_num_seqs, tier.max_num_batched_tokens
    # Activation memory grows with max_num_seqs (the sampler's logits), so lowering seqs to what the KV cache
    # holds frees memory: iterate to the fixed point where the cache holds every sequence we admit.
    for _ in range(6):
        settings = _settings(shape, common, spec, seqs, t_b)
        memory = replica_memory(facts, settings, gpu, common.profile)
        if not memory.fits:
            kv = memory.binding.kv_cache
            if memory.blocks == 0:
                return Rejection(shape, f"no memory left for the KV cache ({_gib(kv)} per GPU)", kv / GIB, 0)
            fit = longest_fitting_len(memory, settings, common.max_model_len)
            return Rejection(
                shape,
                f"the KV cache holds {fit:,} tokens per request, below maxModelLen {common.max_model_len:,}",
                kv / GIB,
                fit,
            )
        capacity = math.floor(memory.concurrency_at(common.workload_tokens, settings))
        if capacity >= seqs:
            break
        seqs = max(1, capacity)
    concurrency = min(float(seqs), memory.concurrency_at(common.workload_tokens, settings))
    needed = math.ceil(spec.workload.concurrency / concurrency) if spec.workload.concurrency else 0
    upper = spec.replicas.upper
    replicas = min(max(needed, spec.replicas.min), upper)
    return Candidate(shape, settings, memory, concurrency, replicas, max(0, needed - upper))


def _rank(candidates: list[Candidate]) -> list[Candidate]:
    priced = all(c.cost() is not None for c in candidates)

    def key(c: Candidate) -> tuple[float, ...]:
        meets_slo = c.performance is None or c.performance.meets_slo
        cost = c.cost() if priced else c.gpu_hours_per_hour()
        return (
            c.replicas_short,
            0 if meets_slo else 1,
            float(cost or 0),
            c.shape.gpus,
            c.shape.preference,
            c.shape.pp,
            -c.memory.blocks,
        )

    return sorted(candidates, key=key)


def search(request: SizingRequest, performance: PerformanceHook | None = None) -> SearchResult:
    """Evaluate every shape; single-node shapes of a pool first, multi-node ones only where no single node fits."""
    common = _common(request)
    result = SearchResult()
    by_pool: dict[str, list[Shape]] = {}
    for shape in _shapes(request):
        by_pool.setdefault(shape.pool.name, []).append(shape)
    for shapes in by_pool.values():
        single_node_fits = False
        for shape in shapes:
            if shape.nodes > 1 and single_node_fits and request.spec.gpu.pipeline_parallel_size is None:
                continue
            outcome = _evaluate(shape, request, common)
            if isinstance(outcome, Rejection):
                result.rejections.append(outcome)
                continue
            if performance is not None:
                outcome = _with_performance(outcome, request.spec, performance)
            result.candidates.append(outcome)
            single_node_fits = single_node_fits or shape.nodes == 1
    result.candidates = _rank(result.candidates)
    return result


def _with_performance(candidate: Candidate, spec: LLMDeploymentSpec, performance: PerformanceHook) -> Candidate:
    predicted = performance(candidate, spec)
    replicas, short = candidate.replicas, candidate.replicas_short
    if spec.workload.request_rate and predicted.max_request_rate > 0:
        needed = max(math.ceil(spec.workload.request_rate / predicted.max_request_rate), candidate.replicas)
        replicas = min(max(needed, spec.replicas.min), spec.replicas.upper)
        short = max(short, needed - spec.replicas.upper)
    return Candidate(
        candidate.shape,
        candidate.settings,
        candidate.memory,
        candidate.workload_concurrency,
        replicas,
        short,
        predicted,
    )


def _common(request: SizingRequest) -> _Common:
    spec, facts = request.spec, request.facts
    check_extra_args(spec.serving.engine.extra_args)
    profile = profile_for(spec.serving.engine.version)
    weights = resolve_weights(spec.model, facts)
    max_len = min(spec.serving.max_model_len or facts.default_max_model_len, facts.max_model_len_limit)
    workload = min(spec.workload.input_tokens + spec.workload.output_tokens, max_len)
    kv_dtype = "fp8" if spec.serving.kv_cache_dtype.value == "fp8" else "auto"
    return _Common(profile, weights, max_len, workload, kv_dtype)


# --- failure messages -----------------------------------------------------------------------------------------------


def _no_plan_error(request: SizingRequest, result: SearchResult) -> SizingError:
    spec = request.spec
    if not request.pools:
        return SizingError(
            "spec.gpu.products",
            "no GPU pools are known to rightsizer",
            "label GPU nodes (GPU Feature Discovery) or declare pools in the operator configuration",
        )
    if not allowed(request.pools, spec.gpu.products):
        offered = ", ".join(sorted({p.product for p in request.pools}))
        return SizingError(
            "spec.gpu.products", f"no GPU pool offers {', '.join(spec.gpu.products)}", f"allow one of: {offered}"
        )
    pinned = spec.gpu.tensor_parallel_size is not None or spec.gpu.pipeline_parallel_size is not None
    shape_errors = [r for r in result.rejections if r.kv_gib is None]
    if pinned and len(shape_errors) == len(result.rejections):
        field = "spec.gpu.tensorParallelSize" if spec.gpu.tensor_parallel_size else "spec.gpu.pipelineParallelSize"
        return SizingError(field, f"vLLM would refuse it: {shape_errors[0].reason}", _valid_tp_hint(request))
    len_limited = [r for r in result.rejections if r.longest_fitting_len]
    if len_limited and spec.serving.max_model_len is not None:
        best = max(len_limited, key=lambda r: r.longest_fitting_len or 0)
        return SizingError(
            "spec.serving.maxModelLen",
            f"{spec.serving.max_model_len:,} tokens do not fit: the roomiest plan ({best.shape.label()}) holds "
            f"{best.longest_fitting_len:,} per request",
            f"lower spec.serving.maxModelLen to {best.longest_fitting_len:,} or less, use spec.serving.kvCacheDtype: "
            "fp8, or allow larger GPUs",
        )
    sized = [r for r in result.rejections if r.kv_gib is not None]
    detail = ""
    if sized:
        best = max(sized, key=lambda r: r.kv_gib or -math.inf)
        detail = f"; the roomiest plan ({best.shape.label()}): {best.reason}"
    weights = total_parameters(request.facts)
    return SizingError(
        "spec.gpu.products",
        f"no allowed GPU pool can hold one replica of this {weights / 1e9:.1f}B-parameter model{detail}",
        "allow larger GPUs or more nodes, lower spec.serving.maxModelLen, or quantize (spec.model.quantization: fp8)",
    )


def _valid_tp_hint(request: SizingRequest) -> str:
    widest = max((p.gpus_per_node for p in request.pools), default=8)
    valid = [tp for tp in range(1, widest + 1) if not tensor_parallel_problems(request.facts, tp)]
    return f"use one of {', '.join(map(str, valid))}, or remove the pin and let rightsizer choose"


# --- the plan and its explanation -----------------------------------------------------------------------------------


def plan(request: SizingRequest, model_name: str, performance: PerformanceHook | None = None) -> Plan:
    """The cheapest feasible plan, or SizingError naming the field to change."""
    unknown = unknown_products(request.spec.gpu.products)
    if unknown:
        raise SizingError(
            "spec.gpu.products",
            f"unknown GPU product {unknown[0]!r}",
            "use a GPU Feature Discovery name such as NVIDIA-H200 or an alias: H200, H100, B200, A100-80GB, L40S",
        )
    result = search(request, performance)
    if not result.candidates:
        raise _no_plan_error(request, result)
    return to_plan(request, result.candidates[0], result, model_name)


def to_plan(request: SizingRequest, chosen: Candidate, result: SearchResult, model_name: str) -> Plan:
    spec = request.spec
    common = _common(request)
    s, mem, shape = chosen.settings, chosen.memory, chosen.shape
    binding = mem.binding
    args = server_args(
        model=spec.model.name,
        revision=spec.model.revision,
        served_name=spec.model.served_name or spec.model.name,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        max_model_len=s.max_model_len,
        max_num_seqs=s.max_num_seqs,
        max_num_batched_tokens=s.max_num_batched_tokens,
        gpu_memory_utilization=s.gpu_memory_utilization,
        kv_cache_dtype=s.kv_cache_dtype,
        quantization_flag=common.weights.quantization_flag,
        dtype_flag=common.weights.dtype_flag,
        extra=spec.serving.engine.extra_args,
    )
    return Plan(
        gpu_product=shape.pool.product,
        pool=shape.pool.name,
        gpus_per_node=shape.pool.gpus_per_node,
        gpus_per_replica=shape.gpus,
        nodes_per_replica=shape.nodes,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        max_num_seqs=s.max_num_seqs,
        max_model_len=s.max_model_len,
        max_num_batched_tokens=s.max_num_batched_tokens,
        gpu_memory_utilization=s.gpu_memory_utilization,
        dtype=s.dtype,
        quantization=s.weight_format.value,
        kv_cache_dtype=s.kv_cache_dtype,
        block_size=binding.layout.block_size,
        kv_cache_blocks=mem.blocks,
        kv_cache_tokens=mem.kv_cache_tokens,
        max_concurrency=round(mem.max_concurrency, 2),
        workload_concurrency=round(chosen.workload_concurrency, 2),
        replicas=chosen.replicas,
        engine_version=spec.serving.engine.version,
        memory=MemoryBreakdown(
            total_gib_per_gpu=round(shape.pool.gpu.torch_total_gib, 2),
            requested_gib_per_gpu=round(binding.requested / GIB, 2),
            weights_gib_per_gpu=round(binding.weights / GIB, 2),
            activation_gib_per_gpu=round(binding.activation / GIB, 2),
            non_torch_gib_per_gpu=round(binding.non_torch / GIB, 2),
            cuda_graph_gib_per_gpu=round(binding.cuda_graphs / GIB, 2),
            cuda_graph_subtracted=mem.cuda_graphs_subtracted,
            kv_cache_gib_per_gpu=round(binding.kv_cache / GIB, 2),
        ),
        performance=chosen.performance,
        vllm_args=args,
        reasons=_reasons(request, chosen, result, common, model_name),
        warnings=_warnings(request, chosen, common),
    )


def _reasons(
    request: SizingRequest, chosen: Candidate, result: SearchResult, common: _Common, model_name: str
) -> list[str]:
    spec, facts, s, mem, shape = request.spec, request.facts, chosen.settings, chosen.memory, chosen.shape
    binding = mem.binding
    per_token = attention_bytes_per_token(facts, s) * facts.num_layers
    tier = common.profile.tier(shape.pool.gpu.torch_total_gib, shape.pool.product)
    reasons = [
        f"model {model_name}: {facts.architecture}, {total_parameters(facts) / 1e9:.2f}B parameters, "
        f"{facts.num_layers} layers; weights {common.weights.description}",
        f"KV cache per token: {per_token:,} B across all layers at TP1 ({s.kv_cache_dtype} KV)"
        if not facts.is_mla
        else f"KV cache per token: {per_token:,} B (MLA latent, same on every TP rank)",
        f"chose {shape.label()} on {shape.pool.product}: {shape.gpus} GPU(s) per replica on {shape.nodes} node(s), "
        + _why_chosen(chosen, result),
        f"per GPU: {_gib(binding.requested)} budget = {shape.pool.gpu.torch_total_gib:.2f} GiB × "
        f"{s.gpu_memory_utilization:g}; weights {_gib(binding.weights)}, activation {_gib(binding.activation)}, "
        f"non-torch {_gib(binding.non_torch)}"
        + (f", CUDA graphs {_gib(binding.cuda_graphs)}" if mem.cuda_graphs_subtracted else "")
        + f" leave {_gib(binding.kv_cache)} for the KV cache: {mem.blocks:,} blocks of {binding.layout.block_size} "
        f"tokens = {mem.kv_cache_tokens:,} tokens",
        _seqs_reason(chosen, common, tier.max_num_seqs),
        f"max-num-batched-tokens {s.max_num_batched_tokens}: vLLM {spec.serving.engine.version}'s server default for "
        f"{shape.pool.product}; it also sets the activation peak vLLM profiles",
        f"max-model-len {s.max_model_len:,}: "
        + ("from spec.serving.maxModelLen" if spec.serving.max_model_len else "the model's default context")
        + f"; vLLM reports maximum concurrency {mem.max_concurrency:.2f}x at this length",
    ]
    if chosen.replicas != spec.replicas.min or spec.workload.concurrency:
        reasons.append(_replica_reason(chosen, spec))
    if shape.nodes > 1:
        reasons.append(
            f"a replica spans {shape.nodes} nodes: no single {shape.pool.gpus_per_node}-GPU node holds "
            f"the model, so pipeline parallelism ({shape.pp} stages) strings nodes together"
        )
    return reasons


def _why_chosen(chosen: Candidate, result: SearchResult) -> str:
    others = [c for c in result.candidates if c is not chosen]
    price = chosen.cost()
    cost_text = (
        f"{price:.2f}/hour for {chosen.gpu_hours_per_hour()} GPU(s)"
        if price is not None
        else f"{chosen.gpu_hours_per_hour()} GPU(s) in total"
    )
    text = f"the cheapest feasible plan ({cost_text})"
    if others:
        runner = others[0]
        runner_cost = runner.cost()
        runner_text = (
            f"{runner_cost:.2f}/hour"
            if runner_cost is not None and price is not None
            else f"{runner.gpu_hours_per_hour()} GPU(s)"
        )
        text += f"; next best {runner.shape.label()} at {runner_text}"
    rejected = [
        r
        for r in result.rejections
        if r.kv_gib is not None and r.shape.pool == chosen.shape.pool and r.shape.gpus < chosen.shape.gpus
    ]
    if rejected:
        smaller = max(rejected, key=lambda r: r.shape.gpus)
        text += f"; {smaller.shape.label()} does not fit: {smaller.reason}"
    return text


def _seqs_reason(chosen: Candidate, common: _Common, default_seqs: int) -> str:
    s = chosen.settings
    held = chosen.memory.concurrency_at(common.workload_tokens, s)
    if s.max_num_seqs >= default_seqs:
        return (
            f"max-num-seqs {s.max_num_seqs}: vLLM's default cap for this GPU; the KV cache holds {held:.0f} "
            f"sequences of {common.workload_tokens:,} tokens (spec.workload input + output)"
        )
    return (
        f"max-num-seqs {s.max_num_seqs}: what the KV cache holds at {common.workload_tokens:,} tokens per "
        f"sequence (spec.workload input + output), below vLLM's default {default_seqs}, so requests queue "
        "instead of being preempted"
    )


def _replica_reason(chosen: Candidate, spec: LLMDeploymentSpec) -> str:
    if spec.workload.concurrency:
        text = (
            f"replicas {chosen.replicas}: {spec.workload.concurrency} concurrent requests at "
            f"{chosen.workload_concurrency:.0f} per replica"
        )
    else:
        text = f"replicas {chosen.replicas}"
    if chosen.replicas_short:
        text += f"; {chosen.replicas_short} more would be needed but spec.replicas.max is {spec.replicas.upper}"
    return text


def _warnings(request: SizingRequest, chosen: Candidate, common: _Common) -> list[str]:
    spec, facts = request.spec, request.facts
    warnings = []
    requested = spec.serving.max_model_len
    if requested and requested > facts.max_model_len_limit:
        warnings.append(
            f"spec.serving.maxModelLen {requested:,} exceeds the model's limit "
            f"{facts.max_model_len_limit:,}; using {facts.max_model_len_limit:,}"
        )
    if chosen.replicas_short:
        warnings.append(
            f"the declared workload needs {chosen.replicas + chosen.replicas_short} replicas; "
            f"spec.replicas.max allows {spec.replicas.upper}"
        )
    if not common.profile.calibrated:
        warnings.append(
            f"vLLM {spec.serving.engine.version}'s memory accounting is extrapolated from 0.19 "
            "measurements (CUDA-graph subtraction included), not yet measured"
        )
    if not chosen.shape.pool.gpu.torch_total_measured:
        warnings.append(f"{chosen.shape.pool.product}'s usable memory is estimated conservatively, not measured")
    if chosen.performance is not None and not chosen.performance.meets_slo:
        warnings.append("no plan meets spec.slo; this is the closest (see performance)")
    return warnings
