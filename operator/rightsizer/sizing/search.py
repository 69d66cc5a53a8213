"""The plan search: every GPU pool × parallelism vLLM accepts, sized with vLLM's own memory accounting, and the
cheapest plan that serves the declared workload, with a reason for every choice.

Pure: a function of the spec, the model's facts and the pools' shapes (never of their momentary free capacity,
so the plan does not move when rightsizer's own pods land). Placement problems are the reconciler's business."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import PredictedPerformance
from rightsizer.facts.vllm_profiles import GIB, SchedulerTier
from rightsizer.model.config import ModelFacts
from rightsizer.model.memory import (
    EngineSettings,
    ReplicaMemory,
    blocks_per_request,
    replica_memory,
)
from rightsizer.model.parallelism import pipeline_parallel_problems, tensor_parallel_problems
from rightsizer.sizing.batch import BatchLimits, BatchRules, lower_to_fit
from rightsizer.sizing.budget import spend
from rightsizer.sizing.performance import SloPerformance
from rightsizer.sizing.pools import allowed
from rightsizer.sizing.request import (
    Basics,
    Candidate,
    PerformanceHook,
    Rejection,
    SearchResult,
    Shape,
    SizingRequest,
    basics,
)
from rightsizer.sizing.words import gib

MAX_NODES_PER_REPLICA = 8  # beyond this, pipeline bubbles make a replica impractical; refuse rather than plan it

DEFAULT_PERFORMANCE: PerformanceHook = SloPerformance()


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
            shapes += _layouts(Shape(pool, preference, tp, pp), facts, spec.serving.expert_parallel)
            continue
        for tp in range(1, per_node + 1):
            shapes += _layouts(Shape(pool, preference, tp, 1), facts, spec.serving.expert_parallel)
        # Spanning nodes: TP fills each node with the widest degree the model accepts, PP strings the nodes.
        node_tp = max(
            (tp for tp in range(1, per_node + 1) if per_node % tp == 0 and _accepted(facts, tp)),
            default=1,
        )
        max_nodes = min(pool.max_nodes or MAX_NODES_PER_REPLICA, MAX_NODES_PER_REPLICA)
        for nodes in range(2, max_nodes + 1):
            shapes += _layouts(
                Shape(pool, preference, node_tp, nodes * per_node // node_tp), facts, spec.serving.expert_parallel
            )
    return shapes


def _accepted(facts: ModelFacts, tp: int) -> bool:
    """vLLM accepts TP `tp` for this model, with or without expert parallelism."""
    return not tensor_parallel_problems(facts, tp) or not tensor_parallel_problems(facts, tp, expert_parallel=True)


def _layouts(shape: Shape, facts: ModelFacts, pin: bool | None = None) -> list[Shape]:
    """The shape, and its expert-parallel twin where only expert parallelism makes vLLM accept it (an FP8 block
    finer than the expert width per GPU, experts narrower than TP). Where plain TP is accepted, expert
    parallelism with one data-parallel rank holds the same expert bytes per GPU (more on the busiest rank when the
    experts do not divide), keeps the same all-reduce, and can only widen the MoE workspace: it never ranks ahead,
    and plain TP is the layout with fewer surprises, so it is not tried.

    `pin` is spec.serving.expertParallel: True makes every shape expert-parallel and False none (a shape vLLM then
    refuses is rejected with vLLM's reason, by _shape_problems); a dense model with True was refused before the
    search (planner.expert_parallel_pin_error)."""
    if pin is not None:
        return [replace(shape, expert_parallel=pin and facts.moe is not None)]
    if facts.moe is None or shape.tp < 2 or not tensor_parallel_problems(facts, shape.tp):
        return [shape]
    if tensor_parallel_problems(facts, shape.tp, expert_parallel=True):
        return [shape]
    return [shape, replace(shape, expert_parallel=True)]


def _shape_problems(shape: Shape, facts: ModelFacts) -> list[str]:
    problems = tensor_parallel_problems(facts, shape.tp, expert_parallel=shape.expert_parallel)
    problems += pipeline_parallel_problems(facts, shape.pp)
    pool = shape.pool
    if shape.tp > pool.gpus_per_node:
        problems.append(f"TP{shape.tp} would span nodes of {pool.gpus_per_node} GPUs; keep TP within one node")
    elif shape.gpus > pool.gpus_per_node and shape.gpus % pool.gpus_per_node:
        problems.append(f"{shape.gpus} GPUs do not fill whole {pool.gpus_per_node}-GPU nodes")
    if pool.max_nodes is not None and shape.nodes > pool.max_nodes:
        problems.append(f"needs {shape.nodes} nodes, the pool has at most {pool.max_nodes}")
    return problems


# --- evaluating one shape -----------------------------------------------------------------------------------------


def _settings(shape: Shape, common: Basics, spec: LLMDeploymentSpec, seqs: int, t_b: int) -> EngineSettings:
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
        expert_parallel=shape.expert_parallel,
        encoder_loaded=common.multimodal.encoder_loaded,
        mm_limits=common.multimodal.limits,
        widen_encoder_outputs=common.multimodal.widen_encoder_outputs,
        encoder_data_parallel=common.multimodal.encoder_data_parallel,
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


def _evaluate(shape: Shape, request: SizingRequest, common: Basics) -> Candidate | Rejection:
    problems = _shape_problems(shape, request.facts)
    if problems:
        return Rejection(shape, "; ".join(problems))
    spec, facts, gpu, rules = request.spec, request.facts, shape.pool.gpu, common.batch
    tier = common.profile.tier(gpu.torch_total_gib, gpu.product)

    def memory_at(limits: BatchLimits) -> tuple[EngineSettings, ReplicaMemory]:
        settings = _settings(shape, common, spec, limits.max_num_seqs, limits.max_num_batched_tokens)
        return settings, replica_memory(facts, settings, gpu, common.profile)

    defaults = rules.defaults(tier)
    settings, memory = memory_at(defaults)
    fitted, defaults_kv = None, None
    if not memory.fits:
        defaults_kv = memory.binding.kv_cache
        fitted = lower_to_fit(defaults, rules, tier, lambda limits: memory_at(limits)[1].fits)
        if fitted is None:
            return _rejection(shape, common, rules, tier, memory_at)
        settings, memory = memory_at(fitted)
    if rules.pinned_seqs is None:
        # Activation memory grows with max_num_seqs (the sampler's logits), so lowering seqs to what the KV cache
        # holds frees memory: iterate to the fixed point where the cache holds every sequence we admit.
        for _ in range(6):
            capacity = math.floor(memory.concurrency_at(common.workload_tokens, settings))
            if capacity >= settings.max_num_seqs:
                break
            settings, memory = memory_at(BatchLimits(max(1, capacity), settings.max_num_batched_tokens))
    candidate = _candidate(shape, spec, common, settings, memory)
    return replace(candidate, defaults=defaults, fitted=fitted, defaults_kv_cache=defaults_kv)


def _rejection(
    shape: Shape,
    common: Basics,
    rules: BatchRules,
    tier: SchedulerTier,
    memory_at: Callable[[BatchLimits], tuple[EngineSettings, ReplicaMemory]],
) -> Rejection:
    """Why one request does not fit even at the smallest limits the pins allow, measured there."""
    least = rules.least(tier)
    settings, memory = memory_at(least)
    kv = memory.binding.kv_cache
    at = f"even at max-num-seqs {least.max_num_seqs}, max-num-batched-tokens {least.max_num_batched_tokens}"
    # The pins, not the GPU, are what keeps it out when it would fit at the smallest limits they forbid.
    pins_limit = rules.pinned and memory_at(rules.unpinned().least(tier))[1].fits
    if memory.blocks == 0:
        return Rejection(shape, f"no memory left for the KV cache ({gib(kv)} per GPU) {at}", kv / GIB, 0, pins_limit)
    fit = longest_fitting_len(memory, settings, common.max_model_len)
    return Rejection(
        shape,
        f"the KV cache holds {fit:,} tokens per request, below maxModelLen {common.max_model_len:,}, {at}",
        kv / GIB,
        fit,
        pins_limit,
    )


def _candidate(
    shape: Shape, spec: LLMDeploymentSpec, common: Basics, settings: EngineSettings, memory: ReplicaMemory
) -> Candidate:
    concurrency = min(float(settings.max_num_seqs), memory.concurrency_at(common.workload_tokens, settings))
    needed = math.ceil(spec.workload.concurrency / concurrency) if spec.workload.concurrency else 0
    upper = spec.replicas.upper
    replicas = min(max(needed, spec.replicas.min), upper)
    return Candidate(shape, settings, memory, concurrency, replicas, max(0, needed - upper))


def slo_miss(performance: PredictedPerformance, spec: LLMDeploymentSpec) -> float:
    """How far a prediction's slow edge is from spec.slo: the largest predicted/target ratio (≤ 1 when it meets it)."""
    ratios = [0.0]
    if spec.slo.ttft_p95_ms:
        ratios.append(performance.ttft_p95_ms_high / spec.slo.ttft_p95_ms)
    if spec.slo.itl_p95_ms:
        ratios.append(performance.itl_p95_ms_high / spec.slo.itl_p95_ms)
    return max(ratios) * (10.0 if performance.saturated else 1.0)


def _rank(candidates: list[Candidate], spec: LLMDeploymentSpec) -> list[Candidate]:
    return sorted(candidates, key=rank_key(candidates, spec))


# The parts of rank_key's tuple, in order, for explanations (sizing.ranking says which one set two plans apart).
RANK_KEY_PARTS = ("replicas short", "SLO", "SLO miss", "cost", "GPUs per replica", "preference", "PP", "KV blocks")


def rank_key(candidates: list[Candidate], spec: LLMDeploymentSpec) -> Callable[[Candidate], tuple[float, ...]]:
    """The search's order: fewest replicas short of the workload, then meeting spec.slo (the closest miss first),
    then cost (price when every pool has one, else GPU-hours), fewer GPUs, spec.gpu.products order, less PP, more
    KV cache."""
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

    return key


def search(request: SizingRequest, performance: PerformanceHook | None = None) -> SearchResult:
    """Evaluate every shape; single-node shapes of a pool first, multi-node ones only where no single node fits.

    `performance` defaults to the performance model (DEFAULT_PERFORMANCE); MEMORY_ONLY sizes from memory alone.
    """
    performance = DEFAULT_PERFORMANCE if performance is None else performance
    common = basics(request)
    result = SearchResult()
    by_pool: dict[str, list[Shape]] = {}
    for shape in _shapes(request):
        by_pool.setdefault(shape.pool.name, []).append(shape)
    for shapes in by_pool.values():
        single_node_fits = False
        for shape in shapes:
            if shape.nodes > 1 and single_node_fits and request.spec.gpu.pipeline_parallel_size is None:
                continue
            spend()
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
    candidate: Candidate, request: SizingRequest, common: Basics, performance: PerformanceHook
) -> Candidate:
    """Cap max_num_seqs at the ITL target, then count replicas for the workload from one replica's capacity
    within spec.slo, and record the prediction at the load each replica then carries."""
    spec = request.spec
    # A pinned max_num_seqs is honoured exactly: the ITL target does not cap it (the prediction still reports it).
    limit = performance.batch_limit(candidate, request) if common.batch.pinned_seqs is None else None
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
