"""The entry point of sizing: search every shape, explain the cheapest plan that serves the workload, or refuse with
an error naming the field to change and the fix."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.errors import SizingError, SloUnreachableError
from rightsizer.facts.gpus import EXAMPLE_ALIASES, EXAMPLE_GFD_NAME
from rightsizer.model.parallelism import tensor_parallel_problems
from rightsizer.model.params import total_parameters
from rightsizer.sizing.explain import to_plan
from rightsizer.sizing.pools import allowed, unknown_products
from rightsizer.sizing.ranking import RankedPool, rank_pools
from rightsizer.sizing.request import (
    MEMORY_ONLY,
    Floor,
    PerformanceHook,
    Rejection,
    SearchResult,
    SizingRequest,
)
from rightsizer.sizing.search import DEFAULT_PERFORMANCE, search


def plan(request: SizingRequest, model_name: str, performance: PerformanceHook | None = None) -> Plan:
    """The cheapest feasible plan that meets spec.slo (the closest one when none does), or SizingError naming
    the field to change. `performance`: as for search()."""
    return plan_with_pools(request, model_name, performance)[0]


def plan_with_pools(
    request: SizingRequest, model_name: str, performance: PerformanceHook | None = None
) -> tuple[Plan, list[RankedPool]]:
    """plan(), and every allowed pool's own plan, ranked (sizing.ranking): the first is the plan's pool."""
    unknown = unknown_products(request.spec.gpu.products)
    if unknown:
        raise SizingError(
            "spec.gpu.products",
            f"unknown GPU product {unknown[0]!r}",
            f"use a GPU Feature Discovery name such as {EXAMPLE_GFD_NAME} or an alias: {EXAMPLE_ALIASES}",
        )
    pin_error = expert_parallel_pin_error(request)
    if pin_error is not None:
        raise pin_error
    result = search(request, performance)
    if not result.candidates:
        raise no_plan_error(request, result)
    unreachable = slo_unreachable(request, result, DEFAULT_PERFORMANCE if performance is None else performance)
    if unreachable is not None:
        raise unreachable
    chosen = to_plan(request, result.candidates[0], result, model_name)
    ranked = rank_pools(request, result, model_name)
    return chosen, [replace(ranked[0], plan=chosen), *ranked[1:]]


def slo_unreachable(request: SizingRequest, result: SearchResult, performance: PerformanceHook) -> SizingError | None:
    """Refuse a target that no candidate meets even with one request alone (the prefill of the typical prompt, the
    decode of one token): adding replicas cannot help, and planning GPUs for it would only buy a missed SLO."""
    slo, workload = request.spec.slo, request.spec.workload
    if any(c.performance is not None and c.performance.meets_slo for c in result.candidates):
        return None
    floors = [(floor, c) for c in result.candidates if (floor := performance.floor(c, request)) is not None]
    if not floors:
        return None
    targets: list[tuple[str, float | None, Callable[[Floor], float], str]] = [
        (
            "spec.slo.ttftP95Ms",
            slo.ttft_p95_ms,
            lambda f: f.ttft_p95_ms,
            f"shorten prompts ({workload.input_tokens:,} tokens)",
        ),
        ("spec.slo.itlP95Ms", slo.itl_p95_ms, lambda f: f.itl_p95_ms, "use a smaller or quantized model"),
    ]
    for field, target, value, shorter in targets:
        if target is None:
            continue
        best, chosen = min(floors, key=lambda fc: value(fc[0]))
        if value(best) > target:
            return SloUnreachableError(
                field,
                f"{target:g} ms cannot be met even by one request alone: the lowest any allowed GPU reaches is "
                f"{value(best):.1f} ms ({chosen.shape.label()} on {chosen.shape.pool.product}, at the slow edge of "
                "the model's held-out errors)",
                f"raise {field} to {math.ceil(value(best))} or more, {shorter}, or allow a faster GPU in "
                "spec.gpu.products",
            )
    return None


# --- why no plan -----------------------------------------------------------------------------------------------


def no_plan_error(request: SizingRequest, result: SearchResult) -> SizingError:
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
    if spec.serving.expert_parallel is not None:
        pin_refusal = _expert_parallel_pin_keeps_every_plan_out(request, result)
        if pin_refusal is not None:
            return pin_refusal
    if pinned and len(shape_errors) == len(result.rejections):
        field = "spec.gpu.tensorParallelSize" if spec.gpu.tensor_parallel_size else "spec.gpu.pipelineParallelSize"
        return SizingError(field, f"vLLM would refuse it: {shape_errors[0].reason}", _valid_tp_hint(request))
    sized = [r for r in result.rejections if r.kv_gib is not None]
    if sized and all(r.pins_limit for r in sized):
        return _pinned_batch_error(request, max(sized, key=lambda r: r.kv_gib or -math.inf))
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


def expert_parallel_pin_error(request: SizingRequest) -> SizingError | None:
    """spec.serving.expertParallel: true needs experts to place (vLLM enables expert parallelism for fused-MoE
    layers only; a dense model would get the flag and nothing to apply it to)."""
    if request.spec.serving.expert_parallel and request.facts.moe is None:
        return SizingError(
            "spec.serving.expertParallel",
            f"{request.facts.architecture} is a dense model: it has no experts to place",
            "remove spec.serving.expertParallel (or set it to false)",
        )
    return None


def _expert_parallel_pin_keeps_every_plan_out(request: SizingRequest, result: SearchResult) -> SizingError | None:
    """When spec.serving.expertParallel is all that keeps every plan out (the search without it finds one), name the
    pin, with what vLLM or memory says about the plan the pin turned away."""
    pin = bool(request.spec.serving.expert_parallel)
    serving = request.spec.serving.model_copy(update={"expert_parallel": None})
    unpinned = replace(request, spec=request.spec.model_copy(update={"serving": serving}))
    found = search(unpinned, MEMORY_ONLY).candidates
    if not found:
        return None
    best = found[0].shape
    twin = next((r for r in result.rejections if r.shape == replace(best, expert_parallel=pin)), None)
    detail = f" ({twin.reason})" if twin is not None else ""
    layout = "with" if pin else "without"
    return SizingError(
        "spec.serving.expertParallel",
        f"no plan fits {layout} expert parallelism: {best.label()} would, but not {layout} it{detail}",
        f"remove spec.serving.expertParallel (or set it to {str(not pin).lower()})",
    )


def _pinned_batch_error(request: SizingRequest, roomiest: Rejection) -> SizingError:
    """Every plan would fit with smaller batch limits than spec.serving pins: name the pin."""
    serving = request.spec.serving
    field = "spec.serving.maxNumSeqs" if serving.max_num_seqs is not None else "spec.serving.maxNumBatchedTokens"
    return SizingError(
        field,
        f"the pinned batch limits leave no room for one request of maxModelLen on any allowed GPU; the roomiest "
        f"plan ({roomiest.shape.label()}): {roomiest.reason}",
        "lower spec.serving.maxNumSeqs (the sampler's peak grows with it) or spec.serving.maxNumBatchedTokens, or "
        "remove them and let rightsizer choose",
    )


def _valid_tp_hint(request: SizingRequest) -> str:
    widest = max((p.gpus_per_node for p in request.pools), default=8)
    facts = request.facts
    valid = [
        tp
        for tp in range(1, widest + 1)
        if not tensor_parallel_problems(facts, tp) or not tensor_parallel_problems(facts, tp, expert_parallel=True)
    ]
    return f"use one of {', '.join(map(str, valid))}, or remove the pin and let rightsizer choose"


# --- the plan and its explanation -----------------------------------------------------------------------------------
