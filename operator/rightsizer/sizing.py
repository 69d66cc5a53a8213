"""The plan search: every GPU pool × parallelism vLLM accepts, sized with vLLM's own memory accounting, and the
cheapest plan that serves the declared workload, with a reason for every choice.

Pure: a function of the spec, the model's facts and the pools' shapes (never of their momentary free capacity,
so the plan does not move when rightsizer's own pods land). Placement problems are the reconciler's business.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

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
from rightsizer.perf import BatchLimit, SloPerformance
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
    batch_limit: BatchLimit | None = None  # the ITL target's cap on max_num_seqs, when one applies
    memory_max_num_seqs: int | None = None  # max_num_seqs before that cap: what memory alone allows

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


class PerformanceHook(Protocol):
    """What sizing asks of a performance model (rightsizer.perf.SloPerformance unless told otherwise).

    Sizing caps max_num_seqs with batch_limit, counts replicas for spec.workload from predict's capacity
    (maxConcurrencyWithinSLO, maxRequestRate), and prefers plans that meet spec.slo. None means "no figures".
    """

    def batch_limit(self, candidate: Candidate, request: SizingRequest) -> BatchLimit | None: ...

    def predict(self, candidate: Candidate, request: SizingRequest, replicas: int) -> PredictedPerformance | None: ...


class MemoryOnly:
    """A hook with no performance model: plans from memory alone (the behaviour before issue 6)."""

    def batch_limit(self, candidate: Candidate, request: SizingRequest) -> BatchLimit | None:
        return None

    def predict(self, candidate: Candidate, request: SizingRequest, replicas: int) -> PredictedPerformance | None:
        return None


MEMORY_ONLY = MemoryOnly()
DEFAULT_PERFORMANCE: PerformanceHook = SloPerformance()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
    return _candidate(shape, spec, common, settings, memory)


def _candidate(
    shape: Shape, spec: LLMDeploymentSpec, common: _Common, settings: EngineSettings, memory: ReplicaMemory
) -> Candidate:
    concurrency = min(float(settings.max_num_seqs), memory.concurrency_at(common.workload_tokens, settings))
    needed = math.ceil(spec.workload.concurrency / concurrency) if spec.workload.concurrency else 0
    upper = spec.replicas.upper
    replicas = min(max(needed, spec.replicas.min), upper)
    return Candidate(shape, settings, memory, concurrency, replicas, max(0, needed - upper))


def slo_miss(performance: PredictedPerformance, spec: LLMDeploymentSpec) -> float:
    """How far a prediction is from spec.slo: the largest predicted/target ratio (≤ 1 when it meets it)."""
    ratios = [0.0]
    if spec.slo.ttft_p95_ms:
        ratios.append(performance.ttft_p95_ms / spec.slo.ttft_p95_ms)
    if spec.slo.itl_p95_ms:
        ratios.append(performance.itl_p95_ms / spec.slo.itl_p95_ms)
    return max(ratios) * (10.0 if performance.saturated else 1.0)


def _rank(candidates: list[Candidate], spec: LLMDeploymentSpec) -> list[Candidate]:
    priced = all(c.cost() is not None for c in candidates)
    has_slo = spec.slo.ttft_p95_ms is not None or spec.slo.itl_p95_ms is not None

    def slo_key(c: Candidate) -> tuple[int, float]:
        if c.performance is None:  # no figures for this GPU: after plans known to meet the SLO
            return (1 if has_slo else 0, 0.0)
        if c.performance.meets_slo:
            return (0, 0.0)
        return (2, slo_miss(c.performance, spec))  # the closest miss first

    def key(c: Candidate) -> tuple[float, ...]:
        cost = c.cost() if priced else c.gpu_hours_per_hour()
        return (
            c.replicas_short,
            *slo_key(c),
            float(cost or 0),
            c.shape.gpus,
            c.shape.preference,
            c.shape.pp,
            -c.memory.blocks,
        )

    return sorted(candidates, key=key)


def search(request: SizingRequest, performance: PerformanceHook | None = None) -> SearchResult:
    """Evaluate every shape; single-node shapes of a pool first, multi-node ones only where no single node fits.

    `performance` defaults to the performance model (DEFAULT_PERFORMANCE); MEMORY_ONLY sizes from memory alone.
    """
    performance = DEFAULT_PERFORMANCE if performance is None else performance
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
            outcome = _with_performance(outcome, request, common, performance)
            result.candidates.append(outcome)
            single_node_fits = single_node_fits or shape.nodes == 1
    result.candidates = _rank(result.candidates, request.spec)
    return result


def _with_performance(
    candidate: Candidate, request: SizingRequest, common: _Common, performance: PerformanceHook
) -> Candidate:
    """Cap max_num_seqs at the ITL target, then count replicas for the workload from one replica's capacity
    within spec.slo, and record the prediction at the load each replica then carries."""
    spec = request.spec
    limit = performance.batch_limit(candidate, request)
    seqs = candidate.settings.max_num_seqs
    if limit is not None and limit.max_num_seqs < seqs:
        settings = replace(candidate.settings, max_num_seqs=limit.max_num_seqs)
        memory = replica_memory(request.facts, settings, candidate.shape.pool.gpu, common.profile)
        candidate = _candidate(candidate.shape, spec, common, settings, memory)
    candidate = replace(candidate, batch_limit=limit, memory_max_num_seqs=seqs)
    predicted = performance.predict(candidate, request, candidate.replicas)
    if predicted is None:
        return candidate
    needed = 0
    if spec.workload.concurrency:
        per_replica = candidate.workload_concurrency
        if predicted.max_concurrency_within_slo > 0:
            per_replica = min(per_replica, predicted.max_concurrency_within_slo)
        needed = math.ceil(spec.workload.concurrency / per_replica)
    if spec.workload.request_rate and predicted.max_request_rate > 0:
        needed = max(needed, math.ceil(spec.workload.request_rate / predicted.max_request_rate))
    upper = spec.replicas.upper
    replicas = min(max(needed, spec.replicas.min), upper)
    if replicas != candidate.replicas:
        predicted = performance.predict(candidate, request, replicas) or predicted
    return replace(candidate, replicas=replicas, replicas_short=max(0, needed - upper), performance=predicted)


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
    """The cheapest feasible plan that meets spec.slo (the closest one when none does), or SizingError naming
    the field to change. `performance`: as for search()."""
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
        f"chose {shape.label()} on {shape.pool.product}: {_count(shape.gpus, 'GPU')} per replica on "
        f"{_count(shape.nodes, 'node')}, " + _why_chosen(chosen, result, spec),
        f"per GPU: {_gib(binding.requested)} budget = {shape.pool.gpu.torch_total_gib:.2f} GiB × "
        f"{s.gpu_memory_utilization:g}; weights {_gib(binding.weights)}, activation {_gib(binding.activation)}, "
        f"non-torch {_gib(binding.non_torch)}"
        + (f", CUDA graphs {_gib(binding.cuda_graphs)}" if mem.cuda_graphs_subtracted else "")
        + f" leave {_gib(binding.kv_cache)} for the KV cache: {mem.blocks:,} blocks of {binding.layout.block_size} "
        f"tokens = {mem.kv_cache_tokens:,} tokens",
        _seqs_reason(chosen, common, tier.max_num_seqs, spec),
        f"max-num-batched-tokens {s.max_num_batched_tokens}: vLLM {spec.serving.engine.version}'s server default for "
        f"{shape.pool.product}; it also sets the activation peak vLLM profiles",
        f"max-model-len {s.max_model_len:,}: "
        + ("from spec.serving.maxModelLen" if spec.serving.max_model_len else "the model's default context")
        + f"; vLLM reports maximum concurrency {mem.max_concurrency:.2f}x at this length",
    ]
    if chosen.performance is not None:
        reasons.append(_performance_reason(chosen, spec))
    slo_reason = _slo_choice_reason(chosen, result, spec)
    if slo_reason:
        reasons.insert(3, slo_reason)
    if chosen.replicas != spec.replicas.min or spec.workload.concurrency or spec.workload.request_rate:
        reasons.append(_replica_reason(chosen, spec))
    if shape.nodes > 1:
        reasons.append(
            f"a replica spans {shape.nodes} nodes: no single {shape.pool.gpus_per_node}-GPU node holds "
            f"the model, so pipeline parallelism ({shape.pp} stages) strings nodes together"
        )
    return reasons


def _why_chosen(chosen: Candidate, result: SearchResult, spec: LLMDeploymentSpec) -> str:
    others = [c for c in result.candidates if c is not chosen]
    price = chosen.cost()
    cost_text = (
        f"{price:.2f}/hour for {_count(chosen.gpu_hours_per_hour(), 'GPU')}"
        if price is not None
        else f"{_count(chosen.gpu_hours_per_hour(), 'GPU')} in total"
    )
    text = f"the cheapest feasible plan ({cost_text})"
    if _has_slo(spec) and chosen.performance is not None:
        text = (
            f"the cheapest plan predicted to meet spec.slo ({cost_text})"
            if chosen.performance.meets_slo
            else f"the plan closest to spec.slo ({cost_text}); none meets it"
        )
    if others:
        runner = others[0]
        runner_cost = runner.cost()
        runner_text = (
            f"{runner_cost:.2f}/hour"
            if runner_cost is not None and price is not None
            else _count(runner.gpu_hours_per_hour(), "GPU")
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


def _seqs_reason(chosen: Candidate, common: _Common, default_seqs: int, spec: LLMDeploymentSpec) -> str:
    s, limit, memory_seqs = chosen.settings, chosen.batch_limit, chosen.memory_max_num_seqs
    held = chosen.memory.concurrency_at(common.workload_tokens, s)
    if limit is not None and memory_seqs is not None and s.max_num_seqs < memory_seqs:
        itl = f"{limit.itl_p95_s * 1e3:.1f} ms"
        if not limit.met:
            return (
                f"max-num-seqs {s.max_num_seqs}: even one sequence misses spec.slo.itlP95Ms "
                f"({spec.slo.itl_p95_ms:g} ms): predicted ITL p95 {itl}"
            )
        return (
            f"max-num-seqs {s.max_num_seqs}: the largest batch whose predicted ITL p95 ({itl}, with new prompts "
            f"prefilled between decode steps) stays within spec.slo.itlP95Ms ({spec.slo.itl_p95_ms:g} ms); "
            f"memory alone allows {memory_seqs}"
        )
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


def _has_slo(spec: LLMDeploymentSpec) -> bool:
    return spec.slo.ttft_p95_ms is not None or spec.slo.itl_p95_ms is not None


def _performance_reason(chosen: Candidate, spec: LLMDeploymentSpec) -> str:
    p = chosen.performance
    assert p is not None
    w = spec.workload
    if w.concurrency:
        load = f"{p.concurrency:g} concurrent requests per replica"
    elif w.request_rate:
        load = f"{w.request_rate / max(chosen.replicas, 1):.2f} req/s per replica"
    else:
        load = f"a full replica ({p.concurrency:g} concurrent requests)"
    text = (
        f"predicted at {load} of {w.input_tokens:,} + {w.output_tokens:,} tokens: TTFT p50/p95 "
        f"{p.ttft_p50_ms:.0f}/{p.ttft_p95_ms:.0f} ms, ITL p50/p95 {p.itl_p50_ms:.1f}/{p.itl_p95_ms:.1f} ms, "
        f"{p.output_tokens_per_second:,.0f} output tokens/s; one replica serves {p.max_request_rate:.2f} req/s "
        f"or {p.max_concurrency_within_slo} concurrent requests"
        + (" within spec.slo" if _has_slo(spec) else " (90% of saturation; no spec.slo)")
    )
    return text + ("" if p.calibrated else "; efficiency extrapolated, see warnings")


def _slo_misses(c: Candidate, spec: LLMDeploymentSpec) -> str:
    """What a plan's prediction misses of spec.slo, as `ITL p95 25.8 ms > 20 ms, ...`."""
    p, limit = c.performance, c.batch_limit
    assert p is not None
    misses = []
    if limit is not None and not limit.met:
        misses.append(f"ITL p95 {limit.itl_p95_s * 1e3:.1f} ms > {spec.slo.itl_p95_ms:g} ms even for a single request")
    elif spec.slo.itl_p95_ms is not None and p.itl_p95_ms > spec.slo.itl_p95_ms:
        misses.append(f"ITL p95 {p.itl_p95_ms:.1f} ms > {spec.slo.itl_p95_ms:g} ms")
    if spec.slo.ttft_p95_ms is not None and p.ttft_p95_ms > spec.slo.ttft_p95_ms:
        misses.append(f"TTFT p95 {p.ttft_p95_ms:.0f} ms > {spec.slo.ttft_p95_ms:g} ms")
    if p.saturated:
        misses.append("the declared load saturates it")
    return ", ".join(misses)


def _slo_choice_reason(chosen: Candidate, result: SearchResult, spec: LLMDeploymentSpec) -> str | None:
    """Why the plan costs more than memory alone needs: the cheaper plans miss spec.slo."""
    if not _has_slo(spec) or chosen.performance is None:
        return None
    chosen_cost = chosen.cost() or float(chosen.gpu_hours_per_hour())
    cheaper = [
        c
        for c in result.candidates
        if c.performance is not None
        and not c.performance.meets_slo
        and ((c.cost() or float(c.gpu_hours_per_hour())) < chosen_cost or c.shape.gpus < chosen.shape.gpus)
    ]
    if not cheaper or not chosen.performance.meets_slo:
        return None
    nearest = min(cheaper, key=lambda c: (c.shape.gpus, c.cost() or 0.0))
    return (
        f"{chosen.shape.label()} rather than {nearest.shape.label()} ({_count(nearest.shape.gpus, 'GPU')} per replica, "
        f"which memory allows): {nearest.shape.label()} misses spec.slo, predicted {_slo_misses(nearest, spec)}"
    )


def _replica_reason(chosen: Candidate, spec: LLMDeploymentSpec) -> str:
    p = chosen.performance
    parts = []
    if spec.workload.concurrency:
        per = chosen.workload_concurrency
        if p is not None and p.max_concurrency_within_slo and _has_slo(spec):
            per = min(per, p.max_concurrency_within_slo)
        parts.append(f"{spec.workload.concurrency} concurrent requests at {per:.0f} per replica")
    if spec.workload.request_rate and p is not None and p.max_request_rate > 0:
        parts.append(
            f"spec.workload.requestRate {spec.workload.request_rate:g} req/s at {p.max_request_rate:.2f} per replica"
        )
    text = f"replicas {chosen.replicas}" + (": " + " and ".join(parts) if parts else "")
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
    p = chosen.performance
    if p is not None and _has_slo(spec) and not p.meets_slo:
        warnings.append(f"no plan meets spec.slo; this is the closest: predicted {_slo_misses(chosen, spec)}")
    elif p is not None and p.saturated:
        warnings.append(
            f"the declared load exceeds what {_count(chosen.replicas, 'replica')} serve: requests queue without bound"
        )
    if p is not None and not p.calibrated:
        warnings.append(
            f"predicted performance on {chosen.shape.pool.product} is extrapolated: no published measurements "
            "calibrate the efficiency factors for this GPU (docs/performance-model.md)"
        )
    return warnings
