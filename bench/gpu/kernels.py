"""The measured operations, written once for both backends, and the benchmark of each shape.

* Linear layers: y = x @ wᵀ (FP8: both operands quantised per tensor, torch._scaled_mm).
* Decode attention over a paged KV cache, as vLLM lays it out: K and V caches of [blocks, 16, kv heads, head dim],
  and a block table per sequence naming its blocks in order. The kernel gathers a sequence's blocks into
  [kv heads, context, head dim] and attends one query token per sequence (grouped-query: the query heads sharing a
  KV head attend together). vLLM's kernels read the blocks in place; this gather materialises a copy, so its
  bandwidth is a floor, and the same attention over KV already contiguous is measured beside it.
* MoE: each token routed to top-k experts; assignments sorted by expert, one gate/up GEMM, SiLU·up and one down
  GEMM per expert that has tokens, and the outputs summed back per token with the router weights.

Every benchmark spreads its inputs over enough copies (`Backend.rotate_bytes`) that repeated calls read memory,
not the L2 cache, as a real step does: decode reads each layer's weights once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.gpu.backends import Array, Backend
from bench.gpu.shapes import (
    BF16,
    FP8,
    PAGED,
    AttentionGeometry,
    AttentionShape,
    GemmShape,
    MoeModel,
    MoeShape,
    Shape,
    StreamShape,
)

ROUTINGS = 4  # MoE calls cycle through this many routings, so small batches do not keep hitting cached experts
MAX_COPIES = 64


def copies_for(nbytes: float, rotate_bytes: int) -> int:
    """Copies of an input of `nbytes` that together span `rotate_bytes`."""
    if nbytes <= 0 or rotate_bytes <= nbytes:
        return 1
    return min(MAX_COPIES, math.ceil(rotate_bytes / nbytes))


# --- paged KV cache ---------------------------------------------------------------------------------------------


def block_tables(
    batch: int, context: int, block_size: int, copies: int, rng: random.Random
) -> tuple[int, list[list[list[int]]]]:
    """(blocks in the cache, `copies` block tables of [batch][blocks per sequence]).

    Blocks are handed out in random order: after some serving a vLLM cache's free list is scattered, and a
    sequence's blocks are not neighbours in memory. Each copy names distinct blocks."""
    per_seq = math.ceil(context / block_size)
    num_blocks = copies * batch * per_seq
    ids = list(range(num_blocks))
    rng.shuffle(ids)
    tables = [
        [ids[(c * batch + b) * per_seq : (c * batch + b + 1) * per_seq] for b in range(batch)] for c in range(copies)
    ]
    return num_blocks, tables


def gather_kv(cache: Array, table: Array, context: int) -> Array:
    """[batch, kv heads, context, head dim] from a cache of [blocks, block size, kv heads, head dim] through a
    block table [batch, blocks per sequence] (the last block may be partly filled)."""
    blocks = cache[table]  # [batch, blocks, block size, kv heads, head dim]
    batch, nblocks, block, heads, dim = blocks.shape
    return blocks.reshape(batch, nblocks * block, heads, dim)[:, :context].swapaxes(1, 2)


def scatter_to_cache(cache: Array, table: Sequence[Sequence[int]], kv: Array) -> None:
    """The inverse of gather_kv: write kv [batch, kv heads, context, head dim] into the blocks `table` names."""
    tokens = kv.swapaxes(1, 2)  # [batch, context, kv heads, head dim]
    context = tokens.shape[1]
    block = cache.shape[1]
    for b, blocks in enumerate(table):
        for j, blk in enumerate(blocks):
            n = min(block, context - j * block)
            cache[blk, :n] = tokens[b, j * block : j * block + n]


def decode_attention(backend: Backend, q: Array, k: Array, v: Array) -> Array:
    """softmax(q kᵀ / √d) v for q [batch, kv heads, group, dim] and k, v [batch, kv heads, context, dim]."""
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    return backend.softmax(scores) @ v


def paged_decode_attention(
    backend: Backend, q: Array, k_cache: Array, v_cache: Array, table: Array, context: int
) -> Array:
    return decode_attention(backend, q, gather_kv(k_cache, table, context), gather_kv(v_cache, table, context))


# --- MoE routing and the grouped GEMM ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Routing:
    """Where each token goes: `choices[t]` = its (expert, router weight) pairs; the assignments sorted by expert:
    `order` the token of each, `weights` its router weight, expert e's run `order[offsets[e]:offsets[e + 1]]`."""

    experts: int
    choices: tuple[tuple[tuple[int, float], ...], ...]
    order: tuple[int, ...]
    weights: tuple[float, ...]
    offsets: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return len(self.choices)

    @property
    def active(self) -> tuple[int, ...]:
        return tuple(e for e in range(self.experts) if self.offsets[e + 1] > self.offsets[e])


def route(tokens: int, experts: int, top_k: int, rng: random.Random) -> Routing:
    """Top-k routing with random router logits: k distinct experts per token, uniformly (what a balanced router
    does on average), weights the softmax over the chosen logits (renormalised top-k, as Mixtral and Qwen3 do)."""
    choices = []
    for _ in range(tokens):
        chosen = rng.sample(range(experts), top_k)
        logits = [rng.gauss(0.0, 1.0) for _ in chosen]
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        choices.append(tuple((e, x / sum(exps)) for e, x in zip(chosen, exps, strict=True)))
    assignments = sorted((e, t, w) for t, pairs in enumerate(choices) for e, w in pairs)
    offsets = [0] * (experts + 1)
    for e, _, _ in assignments:
        offsets[e + 1] += 1
    for e in range(experts):
        offsets[e + 1] += offsets[e]
    return Routing(
        experts=experts,
        choices=tuple(choices),
        order=tuple(t for _, t, _ in assignments),
        weights=tuple(w for _, _, w in assignments),
        offsets=tuple(offsets),
    )


@dataclass(frozen=True)
class DeviceRouting:
    """A Routing's index and weights on the device, made once, outside the timed calls."""

    routing: Routing
    order: Array  # [assignments] token indices
    weights: Array  # [assignments, 1]


def to_device(backend: Backend, routing: Routing) -> DeviceRouting:
    return DeviceRouting(routing, backend.index(list(routing.order)), backend.column(list(routing.weights)))


def grouped_moe(backend: Backend, x: Array, w13: Sequence[Any], w2: Sequence[Any], r: DeviceRouting) -> Array:
    """Routed experts of one MoE layer: x [tokens, hidden] -> [tokens, hidden].

    w13[e] is expert e's gate and up projections fused, [2I, H]; w2[e] its down projection, [H, I]."""
    routing = r.routing
    xs = x[r.order]  # each assignment's token, grouped by expert
    ys = backend.zeros((xs.shape[0], x.shape[1]))
    for e in routing.active:
        start, end = routing.offsets[e], routing.offsets[e + 1]
        gate_up = backend.linear(xs[start:end], w13[e])
        half = gate_up.shape[1] // 2
        ys[start:end] = backend.linear(backend.silu_mul(gate_up[:, :half], gate_up[:, half:]), w2[e])
    out = backend.zeros(tuple(x.shape))
    backend.index_add(out, r.order, ys * r.weights)
    return out


def dense_moe_reference(backend: Backend, x: Array, w13: Sequence[Any], w2: Sequence[Any], routing: Routing) -> Array:
    """The same layer the slow, obvious way: every expert on every token, then each token's routed outputs
    weighted and summed (what the grouped GEMM must equal)."""
    out = backend.zeros(tuple(x.shape))
    for e in range(routing.experts):
        gate_up = backend.linear(x, w13[e])
        half = gate_up.shape[1] // 2
        y = backend.linear(backend.silu_mul(gate_up[:, :half], gate_up[:, half:]), w2[e])
        mask = [sum(w for expert, w in pairs if expert == e) for pairs in routing.choices]
        out = out + y * backend.column(mask)
    return out


# --- benchmarks -------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    """One shape ready to time: run(i) is one call (i picks the copy of the inputs); the bytes and FLOPs of one
    call. `model_bytes` counts what the performance model counts (weights; for attention the KV cache), the
    figure the efficiency factors are fitted on; `bytes_moved` adds activations, for the achieved bandwidth."""

    run: Callable[[int], object]
    model_bytes: float
    bytes_moved: float
    flops: float
    copies: int
    extra: dict[str, float | int] = field(default_factory=dict)


class WeightCache:
    """Keeps the last shape's weights: consecutive shapes that share a weight (every M of one layer) reuse it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.key: object = None
        self.value: Any = None

    def get(self, key: object, make: Callable[[], Any]) -> Any:
        if key != self.key:
            self.clear()
            self.value, self.key = make(), key
        return self.value

    def clear(self) -> None:
        if self.key is not None:
            self.key = self.value = None
            self.backend.release()


def build(backend: Backend, shape: Shape, *, rng: random.Random, cache: WeightCache) -> Bench:
    if isinstance(shape, GemmShape):
        return _gemm(backend, shape, cache)
    if isinstance(shape, AttentionShape):
        return _attention(backend, shape, rng)
    if isinstance(shape, MoeShape):
        return _moe(backend, shape, rng, cache)
    return _stream(backend, shape)


def _gemm(backend: Backend, s: GemmShape, cache: WeightCache) -> Bench:
    elt, act = backend.element_bytes(s.dtype), backend.element_bytes(BF16)
    weight_bytes = s.n * s.k * elt
    copies = copies_for(weight_bytes, backend.rotate_bytes())

    def make() -> list[Any]:
        return [backend.prepare(backend.randn((s.n, s.k), 1.0 / math.sqrt(s.k)), s.dtype) for _ in range(copies)]

    weights = cache.get((s.weight_key, copies), make)
    x = backend.prepare(backend.randn((s.m, s.k)), s.dtype)  # quantised once: this times the GEMM alone

    def run(i: int) -> object:
        return backend.linear(x, weights[i % copies])

    moved = weight_bytes + s.m * s.k * elt + s.m * s.n * act
    return Bench(run, weight_bytes, moved, s.flops(), copies)


def _attention(backend: Backend, s: AttentionShape, rng: random.Random) -> Bench:
    g = s.geometry
    act = backend.element_bytes(s.dtype)
    kv_bytes = s.kv_elements() * act
    copies = copies_for(kv_bytes, backend.rotate_bytes())
    q = backend.randn((s.batch, g.kv_heads, g.q_heads // g.kv_heads, g.head_dim))
    if s.layout == PAGED:
        num_blocks, tables = block_tables(s.batch, s.context, s.block_size, copies, rng)
        k_cache = backend.randn((num_blocks, s.block_size, g.kv_heads, g.head_dim))
        v_cache = backend.randn((num_blocks, s.block_size, g.kv_heads, g.head_dim))
        on_device = [backend.index(t) for t in tables]

        def run(i: int) -> object:
            return paged_decode_attention(backend, q, k_cache, v_cache, on_device[i % copies], s.context)

    else:
        shape = (s.batch, g.kv_heads, s.context, g.head_dim)
        ks = [backend.randn(shape) for _ in range(copies)]
        vs = [backend.randn(shape) for _ in range(copies)]

        def run(i: int) -> object:
            return decode_attention(backend, q, ks[i % copies], vs[i % copies])

    query_bytes = 2 * s.batch * g.q_heads * g.head_dim * act  # q in, output out
    return Bench(run, kv_bytes, kv_bytes + query_bytes, s.flops(), copies)


def _moe(backend: Backend, s: MoeShape, rng: random.Random, cache: WeightCache) -> Bench:
    m = s.model
    elt, act = backend.element_bytes(s.dtype), backend.element_bytes(BF16)

    def make() -> tuple[list[Any], list[Any]]:
        # stacked as vLLM holds them ([E, 2I, H] and [E, H, I]); FP8 with one scale per expert
        w13 = backend.randn((m.experts, 2 * m.intermediate, m.hidden), 1.0 / math.sqrt(m.hidden))
        w2 = backend.randn((m.experts, m.hidden, m.intermediate), 1.0 / math.sqrt(m.intermediate))
        return [backend.prepare(w13[e], s.dtype) for e in range(m.experts)], [
            backend.prepare(w2[e], s.dtype) for e in range(m.experts)
        ]

    w13, w2 = cache.get(s.weight_key, make)
    x = backend.randn((s.tokens, m.hidden))
    routings = [to_device(backend, route(s.tokens, m.experts, m.top_k, rng)) for _ in range(ROUTINGS)]

    def run(i: int) -> object:
        return grouped_moe(backend, x, w13, w2, routings[i % ROUTINGS])

    active = sum(len(r.routing.active) for r in routings) / ROUTINGS
    weight_bytes = active * s.expert_elements() * elt
    # activations: x in, out; per assignment the gathered token, gate/up out, SiLU·up, down out (each written, read)
    assignments = s.tokens * m.top_k
    moved = weight_bytes + act * (2 * s.tokens * m.hidden + 2 * assignments * (2 * m.hidden + 3 * m.intermediate))
    return Bench(run, weight_bytes, moved, s.flops(), ROUTINGS, {"active_experts": active})


def _stream(backend: Backend, s: StreamShape) -> Bench:
    src, dst = backend.randn((s.elements,)), backend.zeros((s.elements,))
    nbytes = 2 * s.elements * backend.element_bytes(s.dtype)  # read once, written once

    def run(i: int) -> object:
        backend.copy(dst, src)
        return None

    return Bench(run, nbytes, nbytes, 0.0, 1)


# --- self-checks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    error: float  # max |a − b| / max |b|
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance


def relative_error(backend: Backend, got: Array, want: Array) -> float:
    return backend.max_abs(got - want) / max(backend.max_abs(want), 1e-30)


CHECK_ATTENTION = AttentionGeometry("check", q_heads=4, kv_heads=2, head_dim=16)
CHECK_MOE = MoeModel("check", experts=6, top_k=2, hidden=32, intermediate=48)  # FP8 GEMMs: K, N multiples of 16


def self_check(backend: Backend, dtypes: Sequence[str], seed: int = 0) -> list[Check]:
    """Numerical checks of the kernels on the backend that will be timed, on small shapes (seconds on a GPU):
    paged attention equals attention over the same KV laid out contiguously, the grouped MoE equals the dense
    per-expert loop, and an FP8 GEMM stays near its bf16 result."""
    rng = random.Random(seed)
    checks = []
    g, batch, context, block = CHECK_ATTENTION, 3, 37, 16  # 37: the last block of each sequence is partial
    shape = (batch, g.kv_heads, context, g.head_dim)
    k, v = backend.randn(shape), backend.randn(shape)
    q = backend.randn((batch, g.kv_heads, g.q_heads // g.kv_heads, g.head_dim))
    num_blocks, (table,) = block_tables(batch, context, block, 1, rng)
    k_cache = backend.zeros((num_blocks, block, g.kv_heads, g.head_dim))
    v_cache = backend.zeros((num_blocks, block, g.kv_heads, g.head_dim))
    scatter_to_cache(k_cache, table, k)
    scatter_to_cache(v_cache, table, v)
    paged = paged_decode_attention(backend, q, k_cache, v_cache, backend.index(table), context)
    contiguous = decode_attention(backend, q, k, v)
    checks.append(Check("paged attention = contiguous", relative_error(backend, paged, contiguous), backend.tolerance))

    m, tokens = CHECK_MOE, 9
    for dtype in dtypes:
        w13 = [backend.prepare(backend.randn((2 * m.intermediate, m.hidden), 0.2), dtype) for _ in range(m.experts)]
        w2 = [backend.prepare(backend.randn((m.hidden, m.intermediate), 0.2), dtype) for _ in range(m.experts)]
        x = backend.randn((tokens, m.hidden))
        routing = route(tokens, m.experts, m.top_k, rng)
        grouped = grouped_moe(backend, x, w13, w2, to_device(backend, routing))
        dense = dense_moe_reference(backend, x, w13, w2, routing)
        # FP8 quantises each expert's slice of tokens with its own scale, the dense loop all tokens at once
        tolerance = backend.tolerance if dtype == BF16 else 0.25
        error = relative_error(backend, grouped, dense)
        checks.append(Check(f"grouped MoE = dense per-expert loop ({dtype})", error, tolerance))

    if FP8 in dtypes:
        x, w = backend.randn((24, 64)), backend.randn((48, 64))
        exact = backend.linear(x, w)
        quantised = backend.linear(backend.prepare(x, FP8), backend.prepare(w, FP8))
        checks.append(Check("fp8 GEMM ≈ bf16 GEMM", relative_error(backend, quantised, exact), 0.1))
    return checks
