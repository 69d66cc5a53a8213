"""A chosen candidate as the Plan that status and `rightsizer plan` show: the vLLM arguments, the memory breakdown,
the predicted performance, and a reason for every choice."""

from __future__ import annotations

from dataclasses import replace

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import MemoryBreakdown, Plan
from rightsizer.facts.vllm_profiles import GIB
from rightsizer.model.architectures import unknown_architecture_warning
from rightsizer.model.memory import (
    attention_bytes_per_token,
    encoder_profiling,
)
from rightsizer.model.multimodal import encoder_tp_data
from rightsizer.model.params import experts_per_rank, total_parameters
from rightsizer.sizing.request import (
    Basics,
    Candidate,
    SearchResult,
    SizingRequest,
    basics,
)
from rightsizer.sizing.vllm_args import server_args
from rightsizer.sizing.words import gib, plural


def plan_summary(p: Plan) -> str:
    """The plan in one line (the Planned Event, status.recommendation.summary)."""
    return (
        f"{p.gpus_per_replica} × {p.gpu_product} per replica, TP {p.tensor_parallel_size} PP "
        f"{p.pipeline_parallel_size}, max-num-seqs {p.max_num_seqs}, max-model-len {p.max_model_len}"
    )


def to_plan(request: SizingRequest, chosen: Candidate, result: SearchResult, model_name: str) -> Plan:
    spec = request.spec
    common = basics(request)
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
        expert_parallel=s.expert_parallel,
        mm_limits=common.multimodal.limits,
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
        expert_parallel=s.expert_parallel,
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
    request: SizingRequest, chosen: Candidate, result: SearchResult, common: Basics, model_name: str
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
        f"chose {shape.label()} on {shape.pool.product}: {plural(shape.gpus, 'GPU')} per replica on "
        f"{plural(shape.nodes, 'node')}, " + _why_chosen(chosen, result, spec),
        f"per GPU: {gib(binding.requested)} budget = {shape.pool.gpu.torch_total_gib:.2f} GiB × "
        f"{s.gpu_memory_utilization:g}; weights {gib(binding.weights)}, activation {gib(binding.activation)}, "
        f"non-torch {gib(binding.non_torch)}"
        + (f", CUDA graphs {gib(binding.cuda_graphs)}" if mem.cuda_graphs_subtracted else "")
        + f" leave {gib(binding.kv_cache)} for the KV cache: {mem.blocks:,} blocks of {binding.layout.block_size} "
        f"tokens = {mem.kv_cache_tokens:,} tokens",
        _seqs_reason(chosen, common, tier.max_num_seqs, spec),
        _tokens_reason(chosen, common, spec),
        f"max-model-len {s.max_model_len:,}: "
        + ("from spec.serving.maxModelLen" if spec.serving.max_model_len else "the model's default context")
        + f"; vLLM reports maximum concurrency {mem.max_concurrency:.2f}x at this length",
    ]
    if chosen.fitted is not None:
        reasons.insert(4, _fitted_reason(request, chosen))
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
    if shape.expert_parallel:
        reasons.append(_expert_parallel_reason(request, chosen, result))
    if facts.vision is not None:
        reasons.append(_multimodal_reason(request, chosen, common))
    return reasons


def _multimodal_reason(request: SizingRequest, chosen: Candidate, common: Basics) -> str:
    """What the encoder costs: its weights unless a text-only start skips it, and the profiling run's cached
    outputs (model.memory.encoder_profiling)."""
    vision, s, mm = request.facts.vision, chosen.settings, common.multimodal
    assert vision is not None
    version = request.spec.serving.engine.version
    tower = f"{vision.family} encoder ({vision.parameters / 1e9:.2f}B parameters)"
    if mm.text_only and not mm.encoder_loaded:
        return (
            f"text-only: spec.serving.limitMmPerPrompt sets every modality to 0, so vLLM {version} builds the "
            f"language model alone; the {tower} is not loaded nor profiled"
        )
    if mm.text_only:
        return (
            f"text-only: spec.serving.limitMmPerPrompt sets every modality to 0; vLLM {version} skips profiling "
            f"the {tower} but still loads it, so its weights are counted"
        )
    run = encoder_profiling(request.facts, s)
    assert run is not None
    widened = " (widened to the budget's rows, as this release does)" if s.widen_encoder_outputs else ""
    if s.encoder_data_parallel:
        sharding = f"; --mm-encoder-tp-mode data: every GPU holds the whole {vision.family} encoder"
    elif s.tensor_parallel_size > 1 and encoder_tp_data(request.spec.serving.engine.extra_args):
        sharding = f"; --mm-encoder-tp-mode data is ignored: vLLM {version} does not support it for this encoder"
    else:
        sharding = ""
    return (
        f"multimodal profiling: vLLM runs the {tower} on {plural(run.items, f'dummy {run.modality} item')} of "
        f"{run.tokens_per_item:,} tokens (encoder budget {run.encoder_budget:,}) and keeps their outputs, "
        f"{gib(run.cached_bytes(s.act_bytes))}{widened}, and inputs, {gib(run.input_bytes(s.act_bytes))}, through "
        f"its profiling pass: counted in the activation{sharding}; spec.serving.limitMmPerPrompt limits or turns off "
        "modalities"
    )


def _expert_parallel_reason(request: SizingRequest, chosen: Candidate, result: SearchResult) -> str:
    """Why --enable-expert-parallel: the search tries it only where vLLM refuses the same TP without it."""
    shape, moe = chosen.shape, request.facts.moe
    assert moe is not None  # the search builds expert-parallel shapes for MoE models only
    plain = next(
        (r for r in result.rejections if r.shape == replace(shape, expert_parallel=False)),
        None,
    )
    if request.spec.serving.expert_parallel:
        why = "pinned by spec.serving.expertParallel"
    else:
        why = f"vLLM refuses TP{shape.tp} without it ({plain.reason})" if plain is not None else "vLLM needs it"
    per_gpu = experts_per_rank(moe.num_experts, shape.tp)
    return (
        f"expert parallelism (--enable-expert-parallel): {why}; each GPU holds {per_gpu} of the "
        f"{moe.num_experts} experts whole instead of a 1/{shape.tp} slice of every one, attention and shared "
        "experts stay tensor-parallel"
    )


def _why_chosen(chosen: Candidate, result: SearchResult, spec: LLMDeploymentSpec) -> str:
    others = [c for c in result.candidates if c is not chosen]
    price = chosen.cost()
    cost_text = (
        f"{price:.2f}/hour for {plural(chosen.gpu_hours_per_hour(), 'GPU')}"
        if price is not None
        else f"{plural(chosen.gpu_hours_per_hour(), 'GPU')} in total"
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
            else plural(runner.gpu_hours_per_hour(), "GPU")
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


def _fitted_reason(request: SizingRequest, chosen: Candidate) -> str:
    """Why the limits are below vLLM's defaults (or the pins) although the workload would take more."""
    defaults, fitted, kv = chosen.defaults, chosen.fitted, chosen.defaults_kv_cache
    assert defaults is not None and fitted is not None and kv is not None
    lowered = []
    if fitted.max_num_seqs < defaults.max_num_seqs:
        lowered.append(f"max-num-seqs to {fitted.max_num_seqs}")
    if fitted.max_num_batched_tokens < defaults.max_num_batched_tokens:
        lowered.append(f"max-num-batched-tokens to {fitted.max_num_batched_tokens}")
    return (
        f"at max-num-seqs {defaults.max_num_seqs} and max-num-batched-tokens {defaults.max_num_batched_tokens} the "
        f"activation peak vLLM profiles (a forward pass of the batched tokens, then the sampler over max-num-seqs "
        f"x {request.facts.vocab_size:,} vocabulary logits) leaves {gib(kv)} per GPU for the KV cache, not enough "
        f"for one request of maxModelLen {chosen.settings.max_model_len:,}; lowered "
        + " and ".join(lowered)
        + ", the largest that fit"
    )


def _tokens_reason(chosen: Candidate, common: Basics, spec: LLMDeploymentSpec) -> str:
    s, product = chosen.settings, chosen.shape.pool.product
    tokens = f"max-num-batched-tokens {s.max_num_batched_tokens}"
    peak = "; it also sets the activation peak vLLM profiles"
    if common.batch.pinned_tokens is not None:
        return f"{tokens}: from spec.serving.maxNumBatchedTokens" + peak
    if (
        chosen.fitted is not None
        and chosen.defaults is not None
        and (s.max_num_batched_tokens < chosen.defaults.max_num_batched_tokens)
    ):
        return f"{tokens}: lowered from {chosen.defaults.max_num_batched_tokens} so that one request fits" + peak
    tier = common.profile.tier(chosen.shape.pool.gpu.torch_total_gib, product).max_num_batched_tokens
    if s.max_num_batched_tokens > tier:
        why = (
            f"spec.serving.maxNumSeqs ({common.batch.pinned_seqs}): vLLM needs at least max-num-seqs"
            if common.batch.pinned_seqs is not None and s.max_num_batched_tokens == common.batch.pinned_seqs
            else "maxModelLen: with chunked prefill off vLLM needs at least max-model-len"
        )
        return f"{tokens}: raised from vLLM {spec.serving.engine.version}'s default {tier} to {why}" + peak
    return f"{tokens}: vLLM {spec.serving.engine.version}'s server default for {product}" + peak


def _seqs_reason(chosen: Candidate, common: Basics, default_seqs: int, spec: LLMDeploymentSpec) -> str:
    s, limit, memory_seqs = chosen.settings, chosen.batch_limit, chosen.memory_max_num_seqs
    held = chosen.memory.concurrency_at(common.workload_tokens, s)
    if common.batch.pinned_seqs is not None:
        return (
            f"max-num-seqs {s.max_num_seqs}: from spec.serving.maxNumSeqs; the KV cache holds {held:.0f} "
            f"sequences of {common.workload_tokens:,} tokens (spec.workload input + output)"
        )
    if chosen.fitted is not None and s.max_num_seqs == chosen.fitted.max_num_seqs < default_seqs:
        return (
            f"max-num-seqs {s.max_num_seqs}: the largest batch whose activation peak leaves room for one request "
            f"of maxModelLen (vLLM's default {default_seqs} does not fit, as said above); the KV cache holds "
            f"{held:.0f} sequences of {common.workload_tokens:,} tokens"
        )
    if limit is not None and memory_seqs is not None and s.max_num_seqs < memory_seqs:
        itl = f"{limit.itl_p95_s * 1e3:.1f} ms"
        if not limit.met:
            return (
                f"max-num-seqs {s.max_num_seqs}: even one sequence misses spec.slo.itlP95Ms "
                f"({spec.slo.itl_p95_ms:g} ms): predicted ITL p95 up to {itl}"
            )
        return (
            f"max-num-seqs {s.max_num_seqs}: the largest batch whose predicted ITL p95 at the slow edge ({itl}, with "
            f"new prompts prefilled between decode steps) stays within spec.slo.itlP95Ms ({spec.slo.itl_p95_ms:g} ms); "
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
        f"{p.ttft_p50_ms:.0f}/{p.ttft_p95_ms:.0f} ms, ITL p50/p95 {p.itl_p50_ms:.1f}/{p.itl_p95_ms:.1f} ms "
        f"(p95s up to {p.ttft_p95_ms_high:.0f} ms and {p.itl_p95_ms_high:.1f} ms at the slow edge of the model's "
        f"held-out errors, which spec.slo is checked against), "
        f"{p.output_tokens_per_second:,.0f} output tokens/s; one replica serves {p.max_request_rate:.2f} req/s "
        f"or {p.max_concurrency_within_slo} concurrent requests"
        + (" within spec.slo" if _has_slo(spec) else " (90% of saturation; no spec.slo)")
    )
    return text + ("" if p.calibrated else "; efficiency extrapolated, see warnings")


def _slo_misses(c: Candidate, spec: LLMDeploymentSpec) -> str:
    """What a plan's prediction misses of spec.slo at its slow edge, as `ITL p95 up to 25.8 ms > 20 ms, ...`."""
    p, limit = c.performance, c.batch_limit
    assert p is not None
    misses = []
    if limit is not None and not limit.met:
        misses.append(
            f"ITL p95 up to {limit.itl_p95_s * 1e3:.1f} ms > {spec.slo.itl_p95_ms:g} ms even for a single request"
        )
    elif spec.slo.itl_p95_ms is not None and p.itl_p95_ms_high > spec.slo.itl_p95_ms:
        misses.append(f"ITL p95 up to {p.itl_p95_ms_high:.1f} ms > {spec.slo.itl_p95_ms:g} ms")
    if spec.slo.ttft_p95_ms is not None and p.ttft_p95_ms_high > spec.slo.ttft_p95_ms:
        misses.append(f"TTFT p95 up to {p.ttft_p95_ms_high:.0f} ms > {spec.slo.ttft_p95_ms:g} ms")
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
        f"{chosen.shape.label()} rather than {nearest.shape.label()} ({plural(nearest.shape.gpus, 'GPU')} per replica, "
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


def _warnings(request: SizingRequest, chosen: Candidate, common: Basics) -> list[str]:
    spec, facts = request.spec, request.facts
    warnings = []
    requested = spec.serving.max_model_len
    if requested and requested > facts.max_model_len_limit:
        warnings.append(
            f"spec.serving.maxModelLen {requested:,} exceeds the model's limit "
            f"{facts.max_model_len_limit:,}; using {facts.max_model_len_limit:,}"
        )
    unknown = unknown_architecture_warning(facts.architecture, facts.model_type)
    if unknown is not None:
        warnings.append(unknown)
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
    if chosen.fitted is not None:
        warnings.append(
            "vLLM's default batch limits do not fit this plan's memory: they are lowered (see reasons), so one "
            "replica runs fewer sequences at once; a larger GPU or more GPUs per replica would run more"
        )
    if not chosen.shape.pool.gpu.torch_total_measured:
        warnings.append(f"{chosen.shape.pool.product}'s usable memory is estimated conservatively, not measured")
    p = chosen.performance
    if p is not None and _has_slo(spec) and not p.meets_slo:
        warnings.append(f"no plan meets spec.slo; this is the closest: predicted {_slo_misses(chosen, spec)}")
    elif p is not None and p.saturated:
        warnings.append(
            f"the declared load exceeds what {plural(chosen.replicas, 'replica')} serve: requests queue without bound"
        )
    if p is not None and not p.calibrated:
        warnings.append(
            f"predicted performance on {chosen.shape.pool.product} is extrapolated: no published measurements "
            "calibrate the efficiency factors for this GPU (docs/performance-model.md)"
        )
    return warnings
