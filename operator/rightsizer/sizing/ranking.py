"""Every allowed pool's own plan, ranked: the first is the primary plan, the next ones are where replicas go when
the primary pool is full. Each pool is sized for its own GPU (its own TP/PP, batch limits, replica capacity), and
each entry says why it ranks where it does. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rightsizer.api.v1alpha1.plan import Plan, PoolPlan
from rightsizer.sizing.explain import to_plan
from rightsizer.sizing.pools import GpuPool, allowed
from rightsizer.sizing.request import Candidate, SearchResult, SizingRequest
from rightsizer.sizing.search import RANK_KEY_PARTS, rank_key
from rightsizer.sizing.words import plural


@dataclass(frozen=True)
class RankedPool:
    """One pool's own plan (None: the model does not fit it, or every fitting plan is ruled out) and its status
    entry."""

    pool: GpuPool
    plan: Plan | None
    entry: PoolPlan


def rank_pools(
    request: SizingRequest,
    result: SearchResult,
    model_name: str,
    eligible: Callable[[Candidate], bool] = lambda _: True,
    ruled_out: str = "",
) -> list[RankedPool]:
    """The pools of `request` that spec.gpu.products allows, best first: by their best eligible candidate in the
    search's own order (so the first is the pool of the plan sizing chose), then the pools without one.

    `eligible` filters candidates (a policy's shape limits); `ruled_out` says why a pool whose candidates it all
    refused has no plan."""
    spec = request.spec
    candidates = [c for c in result.candidates if eligible(c)]  # already in the search's order
    key = rank_key(candidates, spec)
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        best.setdefault(candidate.shape.pool.name, candidate)
    ranked: list[RankedPool] = []
    leader: Candidate | None = None
    for rank, chosen in enumerate(best.values(), start=1):
        pool = chosen.shape.pool
        own = SearchResult(
            [c for c in candidates if c.shape.pool.name == pool.name],
            [r for r in result.rejections if r.shape.pool.name == pool.name],
        )
        planned = to_plan(replace(request, pools=[pool]), chosen, own, model_name)
        why = _first_reason(chosen) if leader is None else _behind(chosen, leader, key)
        ranked.append(RankedPool(pool, planned, _entry(rank, planned, chosen, why)))
        leader = leader or chosen
    for _, pool in allowed(request.pools, spec.gpu.products):
        if pool.name in best:
            continue
        why = _unfit_reason(pool, result, ruled_out)
        entry = PoolPlan(rank=len(ranked) + 1, pool=pool.name, gpu_product=pool.product, fits=False, why=why)
        ranked.append(RankedPool(pool, None, entry))
    return ranked


def _entry(rank: int, planned: Plan, chosen: Candidate, why: str) -> PoolPlan:
    performance = planned.performance
    price = chosen.shape.pool.price_per_gpu_hour
    return PoolPlan(
        rank=rank,
        pool=planned.pool,
        gpu_product=planned.gpu_product,
        fits=True,
        gpus_per_replica=planned.gpus_per_replica,
        nodes_per_replica=planned.nodes_per_replica,
        tensor_parallel_size=planned.tensor_parallel_size,
        pipeline_parallel_size=planned.pipeline_parallel_size,
        max_num_seqs=planned.max_num_seqs,
        max_num_batched_tokens=planned.max_num_batched_tokens,
        replicas=planned.replicas,
        max_request_rate=None if performance is None else performance.max_request_rate,
        max_concurrency_within_slo=None if performance is None else performance.max_concurrency_within_slo,
        meets_slo=None if performance is None else performance.meets_slo,
        price_per_replica_hour=None if price is None else round(price * planned.gpus_per_replica, 4),
        why=why,
    )


def _cost_text(c: Candidate) -> str:
    cost = c.cost()
    gpus = plural(c.gpu_hours_per_hour(), "GPU")
    return f"{cost:.2f}/hour for {gpus}" if cost is not None else f"{gpus} in total"


def _shape_text(c: Candidate) -> str:
    return f"{c.shape.label()} × {plural(c.replicas, 'replica')}, {_cost_text(c)}"


def _slo_text(c: Candidate) -> str:
    if c.performance is None:
        return "no performance figures for this GPU"
    return "meets spec.slo" if c.performance.meets_slo else "misses spec.slo"


def _first_reason(chosen: Candidate) -> str:
    return (
        f"primary: {_shape_text(chosen)}; {_slo_text(chosen)}; first in sizing's order (fewest replicas short of "
        "the workload, meeting spec.slo, then the lowest cost, fewest GPUs, spec.gpu.products order)"
    )


def _behind(chosen: Candidate, leader: Candidate, key: Callable[[Candidate], tuple[float, ...]]) -> str:
    """Why `chosen` ranks after the primary: the first part of the search's order in which they differ."""
    mine, theirs = key(chosen), key(leader)
    part = next((name for name, a, b in zip(RANK_KEY_PARTS, mine, theirs, strict=True) if a != b), "")
    differs = {
        "replicas short": f"{chosen.replicas_short} replica(s) short of the workload within spec.replicas.max",
        "SLO": f"{_slo_text(chosen)} where {leader.shape.pool.name} {_slo_text(leader)}",
        "SLO miss": f"misses spec.slo by more than {leader.shape.pool.name}",
        "cost": f"costs more ({_cost_text(chosen)} against {_cost_text(leader)})",
        "GPUs per replica": f"needs more GPUs per replica ({chosen.shape.gpus} against {leader.shape.gpus})",
        "preference": "comes later in spec.gpu.products",
        "PP": f"needs more pipeline stages ({chosen.shape.pp} against {leader.shape.pp})",
        "KV blocks": "holds fewer KV-cache blocks",
    }.get(part, "")
    if not differs:
        tie = f"ties with {leader.shape.pool.name}, listed after it in the pools' order"
        return f"{_shape_text(chosen)}; {_slo_text(chosen)}; {tie}"
    return f"{_shape_text(chosen)}; {_slo_text(chosen)}; after {leader.shape.pool.name}: {differs}"


def _unfit_reason(pool: GpuPool, result: SearchResult, ruled_out: str) -> str:
    fitting = [c for c in result.candidates if c.shape.pool.name == pool.name]
    if fitting and ruled_out:
        return f"no plan: {ruled_out}"
    rejections = [r for r in result.rejections if r.shape.pool.name == pool.name]
    sized = [r for r in rejections if r.kv_gib is not None]
    if sized:
        roomiest = max(sized, key=lambda r: r.kv_gib or 0.0)
        return f"no plan: the roomiest shape ({roomiest.shape.label()}) does not fit: {roomiest.reason}"
    if rejections:
        return f"no plan: {rejections[0].reason}"
    return "no plan: no shape of this pool can serve the model"
