"""What the GPU calibration measures: the shapes, their priorities, what each costs, and trimming to a time budget.

The shapes are those of real models as vLLM runs them, per tensor-parallel rank: the four linear layers of a
Llama decoder (fused QKV, attention output, fused gate/up, down) and the LM head, with M = the tokens of one step
(decode: the running batch, prefill: a chunk); attention of one decode step over a paged KV cache; and the routed
experts of a MoE layer. Pure Python: the plan is built (and `--dry-run` prints it) without torch or numpy.

Every shape has a priority (0 = needed for the fit, higher = denser grids). `--quick` keeps priority 0; a time
budget drops the highest priorities first, so a trimmed run still spans every kind of operation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BF16 = "bf16"
FP8 = "fp8"
DTYPES = (BF16, FP8)

DECODE = "decode"
PREFILL = "prefill"
ATTENTION = "attention"
MOE = "moe"
STREAM = "stream"
KINDS = (STREAM, DECODE, PREFILL, ATTENTION, MOE)

PAGED = "paged"
CONTIGUOUS = "contiguous"
BLOCK_SIZE = 16  # vLLM's default KV block (tokens)


# --- model geometry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseModel:
    """The linear-layer geometry of a Llama-style decoder (config.json fields)."""

    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    def linear_layers(self, tp: int) -> list[tuple[str, int, int]]:
        """(layer, N, K) of each weight on one TP rank, as vLLM shards them: QKV and gate/up column-parallel,
        the attention output and down projection row-parallel, the LM head vocab-parallel. KV heads are
        replicated when TP exceeds them."""
        q_heads = self.heads // tp
        kv_heads = max(1, self.kv_heads // tp)
        return [
            ("qkv", (q_heads + 2 * kv_heads) * self.head_dim, self.hidden),
            ("o", self.hidden, q_heads * self.head_dim),
            ("gate_up", 2 * self.intermediate // tp, self.hidden),
            ("down", self.hidden, self.intermediate // tp),
            ("lm_head", math.ceil(self.vocab / tp), self.hidden),
        ]


@dataclass(frozen=True)
class AttentionGeometry:
    """Attention heads on one TP rank."""

    name: str
    q_heads: int
    kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class MoeModel:
    """Routed experts of one MoE layer (a SwiGLU expert: gate and up fused [2I, H], down [H, I])."""

    name: str
    experts: int
    top_k: int
    hidden: int
    intermediate: int


# Sources: the model's config.json (operator/rightsizer/facts/models/*.json).
LLAMA_8B = DenseModel("llama-3.1-8b", hidden=4096, heads=32, kv_heads=8, head_dim=128, intermediate=14336, vocab=128256)
LLAMA_70B = DenseModel(
    "llama-3.1-70b", hidden=8192, heads=64, kv_heads=8, head_dim=128, intermediate=28672, vocab=128256
)
MIXTRAL_8X7B = MoeModel("mixtral-8x7b", experts=8, top_k=2, hidden=4096, intermediate=14336)
QWEN3_30B_A3B = MoeModel("qwen3-30b-a3b", experts=128, top_k=8, hidden=2048, intermediate=768)
GPT_OSS_120B = MoeModel("gpt-oss-120b", experts=128, top_k=4, hidden=2880, intermediate=2880)


# --- shapes -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GemmShape:
    """y[M, N] = x[M, K] @ w[N, K]ᵀ: one linear layer of one step on one rank."""

    kind: str  # DECODE or PREFILL
    dtype: str
    model: str
    tp: int
    layer: str
    m: int
    n: int
    k: int
    priority: int = 0

    @property
    def label(self) -> str:
        return f"{self.kind} {self.dtype} {self.model} tp{self.tp} {self.layer} M={self.m} N={self.n} K={self.k}"

    @property
    def group(self) -> str:
        return f"{self.model} tp{self.tp}"

    @property
    def weight_key(self) -> tuple[object, ...]:
        return ("gemm", self.dtype, self.n, self.k)

    def weight_elements(self) -> int:
        return self.n * self.k

    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    def params(self) -> dict[str, int | str]:
        return {"model": self.model, "tp": self.tp, "layer": self.layer, "m": self.m, "n": self.n, "k": self.k}


@dataclass(frozen=True)
class AttentionShape:
    """One decode step's attention: `batch` sequences, one query token each, over `context` cached tokens."""

    dtype: str
    geometry: AttentionGeometry
    layout: str  # PAGED: gather blocks through a block table first; CONTIGUOUS: KV already in place
    batch: int
    context: int
    block_size: int = BLOCK_SIZE
    priority: int = 0
    kind: str = field(default=ATTENTION, init=False)

    @property
    def label(self) -> str:
        g = self.geometry
        return f"attention {self.dtype} {self.layout} {g.name} batch={self.batch} context={self.context}"

    @property
    def group(self) -> str:
        return f"{self.geometry.name} {self.layout}"

    @property
    def weight_key(self) -> tuple[object, ...]:
        return ("attention", self)  # nothing shared between attention shapes

    def kv_elements(self) -> int:
        g = self.geometry
        return 2 * self.batch * self.context * g.kv_heads * g.head_dim

    def weight_elements(self) -> int:
        return self.kv_elements()

    def flops(self) -> float:
        # QKᵀ and PV: 2 FLOPs each per head dimension, per (query head, context token): the model's 4·heads·dim
        return 4.0 * self.geometry.q_heads * self.geometry.head_dim * self.batch * self.context

    def params(self) -> dict[str, int | str]:
        g = self.geometry
        return {
            "geometry": g.name,
            "q_heads": g.q_heads,
            "kv_heads": g.kv_heads,
            "head_dim": g.head_dim,
            "layout": self.layout,
            "batch": self.batch,
            "context": self.context,
            "block_size": self.block_size,
        }


@dataclass(frozen=True)
class MoeShape:
    """One MoE layer's routed experts for `tokens` tokens, each routed to top_k experts."""

    dtype: str
    model: MoeModel
    tokens: int
    priority: int = 0
    kind: str = field(default=MOE, init=False)

    @property
    def label(self) -> str:
        m = self.model
        return f"moe {self.dtype} {m.name} E={m.experts} k={m.top_k} H={m.hidden} I={m.intermediate} T={self.tokens}"

    @property
    def group(self) -> str:
        return self.model.name

    @property
    def weight_key(self) -> tuple[object, ...]:
        return ("moe", self.dtype, self.model)

    def expert_elements(self) -> int:
        return 3 * self.model.hidden * self.model.intermediate

    def weight_elements(self) -> int:
        return self.model.experts * self.expert_elements()

    def expected_active_experts(self) -> float:
        """Experts at least one token is routed to: the fraction 1 − (1 − k/E)^T the performance model uses."""
        m = self.model
        return m.experts * (1.0 - (1.0 - m.top_k / m.experts) ** self.tokens)

    def flops(self) -> float:
        return 2.0 * self.tokens * self.model.top_k * self.expert_elements()

    def params(self) -> dict[str, int | str]:
        m = self.model
        return {
            "model": m.name,
            "experts": m.experts,
            "top_k": m.top_k,
            "hidden": m.hidden,
            "intermediate": m.intermediate,
            "tokens": self.tokens,
        }


@dataclass(frozen=True)
class StreamShape:
    """A device-to-device copy: the bandwidth ceiling the other measurements are read against."""

    elements: int
    dtype: str = BF16
    priority: int = 0
    kind: str = field(default=STREAM, init=False)

    @property
    def label(self) -> str:
        return f"stream {self.dtype} copy of {self.elements} elements"

    @property
    def group(self) -> str:
        return "copy"

    @property
    def weight_key(self) -> tuple[object, ...]:
        return ("stream", self.elements)

    def weight_elements(self) -> int:
        return self.elements

    def flops(self) -> float:
        return 0.0

    def params(self) -> dict[str, int | str]:
        return {"elements": self.elements}


Shape = GemmShape | AttentionShape | MoeShape | StreamShape


# --- plans ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSpec:
    """The grids a run covers. Each value maps to its priority tier; a shape's priority is the sum of its tiers."""

    dense_models: tuple[DenseModel, ...]
    tp: dict[int, int]
    layers: dict[str, int]
    decode_m: dict[int, int]
    prefill_m: dict[int, int]
    attention: dict[AttentionGeometry, int]
    attention_batch: dict[int, int]
    attention_context: dict[int, int]
    attention_max_tokens: int  # batch × context cap: the KV (and its gathered copy) must fit in memory
    moe_models: tuple[MoeModel, ...]
    moe_tokens: dict[int, int]
    stream_elements: int


FULL = PlanSpec(
    dense_models=(LLAMA_8B, LLAMA_70B),
    tp={1: 0, 4: 0, 2: 1, 8: 1},
    layers={"qkv": 0, "o": 0, "gate_up": 0, "down": 0, "lm_head": 1},
    decode_m={1: 0, 16: 0, 64: 0, 256: 0, 4: 1, 32: 1, 128: 1, 2: 2, 8: 2},
    prefill_m={2048: 0, 8192: 0, 512: 1, 1024: 1, 4096: 1},
    attention={
        AttentionGeometry("llama-3.1-8b tp1", q_heads=32, kv_heads=8, head_dim=128): 0,
        AttentionGeometry("llama-3.1-70b tp4", q_heads=16, kv_heads=2, head_dim=128): 1,
    },
    attention_batch={1: 0, 32: 0, 256: 0, 8: 1, 64: 1, 128: 1},
    attention_context={2048: 0, 8192: 0, 512: 1, 32768: 1},
    attention_max_tokens=2 * 1024 * 1024,
    moe_models=(MIXTRAL_8X7B, QWEN3_30B_A3B, GPT_OSS_120B),
    moe_tokens={1: 0, 16: 0, 256: 0, 4096: 0, 4: 1, 64: 1, 1024: 1},
    stream_elements=512 * 1024 * 1024,  # 1 GiB of bf16, far beyond any L2
)

# The same code paths on shapes a CPU runs in milliseconds (the numpy backend, the tests). Odd sizes on purpose:
# a context that is not a whole number of blocks, a token count that leaves experts empty.
TINY = PlanSpec(
    dense_models=(DenseModel("tiny-dense", hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=96, vocab=160),),
    tp={1: 0, 2: 1},
    layers={"qkv": 0, "o": 0, "gate_up": 0, "down": 0, "lm_head": 1},
    decode_m={1: 0, 16: 0, 4: 1},
    prefill_m={64: 0, 32: 1},
    attention={AttentionGeometry("tiny-attention", q_heads=4, kv_heads=2, head_dim=16): 0},
    attention_batch={1: 0, 3: 1},
    attention_context={40: 0, 16: 1},
    attention_max_tokens=4096,
    moe_models=(MoeModel("tiny-moe", experts=8, top_k=2, hidden=32, intermediate=48),),
    moe_tokens={1: 0, 24: 0, 5: 1},
    stream_elements=256 * 1024,
)


def plan(
    spec: PlanSpec,
    *,
    dtypes: Sequence[str] = DTYPES,
    kinds: Sequence[str] = KINDS,
    max_priority: int | None = None,
) -> list[Shape]:
    """Every shape of `spec` for the dtypes and kinds asked, ordered by priority, then so that shapes sharing a
    weight run back to back (the weights are allocated once for all of them)."""
    shapes: list[Shape] = []
    if STREAM in kinds:
        shapes.append(StreamShape(spec.stream_elements))
    for dtype in dtypes:
        for model in spec.dense_models:
            for tp, tp_tier in spec.tp.items():
                if model.heads % tp or model.intermediate % tp:
                    continue
                for layer, n, k in model.linear_layers(tp):
                    tier = tp_tier + spec.layers[layer]
                    if DECODE in kinds:
                        shapes += [
                            GemmShape(DECODE, dtype, model.name, tp, layer, m, n, k, tier + m_tier)
                            for m, m_tier in spec.decode_m.items()
                        ]
                    if PREFILL in kinds and layer != "lm_head":  # a prefill samples one token: no LM head GEMM
                        shapes += [
                            GemmShape(PREFILL, dtype, model.name, tp, layer, m, n, k, tier + m_tier)
                            for m, m_tier in spec.prefill_m.items()
                        ]
        if MOE in kinds:
            shapes += [
                MoeShape(dtype, model, tokens, tier)
                for model in spec.moe_models
                for tokens, tier in spec.moe_tokens.items()
            ]
    if ATTENTION in kinds:  # bf16 only: the weights' format does not change the KV cache's
        for geometry, g_tier in spec.attention.items():
            for batch, b_tier in spec.attention_batch.items():
                for context, c_tier in spec.attention_context.items():
                    if batch * context > spec.attention_max_tokens:
                        continue
                    shapes += [
                        AttentionShape(BF16, geometry, layout, batch, context, priority=g_tier + b_tier + c_tier)
                        for layout in (PAGED, CONTIGUOUS)
                    ]
    if max_priority is not None:
        shapes = [s for s in shapes if s.priority <= max_priority]
    return sorted(shapes, key=_order)


def _order(s: Shape) -> tuple[object, ...]:
    m = s.m if isinstance(s, GemmShape) else 0
    return (s.priority, KINDS.index(s.kind), s.dtype, repr(s.weight_key), m)


# --- cost of a shape, and the budget ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How each shape is timed: `warmup` calls, `probe` calls to size the inner loop, then `trials` timed runs
    of `inner` calls each, `inner` chosen so a run lasts about `target_s` (at most `max_inner` calls)."""

    warmup: int
    probe: int
    trials: int
    target_s: float
    max_inner: int


TIMING_FULL = Timing(warmup=3, probe=3, trials=7, target_s=0.008, max_inner=400)
TIMING_QUICK = Timing(warmup=2, probe=3, trials=3, target_s=0.004, max_inner=200)
TIMING_TINY = Timing(warmup=1, probe=2, trials=3, target_s=0.0005, max_inner=50)


@dataclass(frozen=True)
class CostModel:
    """What measuring one shape takes, estimated ahead of the run, to plan within a time budget.

    One call runs at `bytes_per_s` and `flops_per_s` (a roofline at a guessed efficiency) plus a fixed cost per
    kernel launch; measuring a shape costs a fixed setup, the weights' initialisation, the warm-up and probe
    calls, and the timed trials (`trials` × at least `target_s`, from `timing`). The runner rescales these
    estimates by what it observes, so they need only be the right order of magnitude.
    """

    element_bytes: dict[str, int]
    bytes_per_s: float
    flops_per_s: dict[str, float]
    launch_s: float  # per kernel launch, eager
    setup_s: float  # per shape: allocation, graph capture, bookkeeping
    init_bytes_per_s: float  # filling new weights with random numbers
    timing: Timing

    def call_seconds(self, shape: Shape) -> float:
        elt = self.element_bytes[shape.dtype]
        if isinstance(shape, MoeShape):
            weight_bytes = shape.expected_active_experts() * shape.expert_elements() * elt
            launches = 3 + 5 * shape.expected_active_experts()
        elif isinstance(shape, StreamShape):
            weight_bytes, launches = 2.0 * shape.elements * elt, 1.0
        elif isinstance(shape, AttentionShape):
            weight_bytes = shape.kv_elements() * elt * (3 if shape.layout == PAGED else 1)
            launches = 6.0
        else:
            weight_bytes = (shape.weight_elements() + shape.m * (shape.n + shape.k)) * elt
            launches = 1.0
        peak = self.flops_per_s.get(shape.dtype, self.flops_per_s[BF16])
        return max(weight_bytes / self.bytes_per_s, shape.flops() / peak) + launches * self.launch_s

    def seconds(self, shape: Shape) -> float:
        call = self.call_seconds(shape)
        init = shape.weight_elements() * self.element_bytes[shape.dtype] / self.init_bytes_per_s
        t = self.timing
        return self.setup_s + init + (t.warmup + t.probe) * call + t.trials * max(t.target_s, call)


def torch_cost(hbm_tb_per_s: float, bf16_tflops: float, fp8_tflops: float | None, *, quick: bool) -> CostModel:
    """A CUDA GPU at roughly the efficiency a first run shows (70 % of HBM, 60 % of dense peak)."""
    flops = {BF16: 0.6 * bf16_tflops * 1e12, FP8: 0.6 * (fp8_tflops or bf16_tflops) * 1e12}
    return CostModel(
        element_bytes={BF16: 2, FP8: 1},
        bytes_per_s=0.7 * hbm_tb_per_s * 1e12,
        flops_per_s=flops,
        launch_s=6e-6,
        setup_s=0.03,
        init_bytes_per_s=200e9,
        timing=TIMING_QUICK if quick else TIMING_FULL,
    )


def numpy_cost() -> CostModel:
    """A CPU core with numpy (float32 storage for both dtypes)."""
    return CostModel(
        element_bytes={BF16: 4, FP8: 4},
        bytes_per_s=5e9,
        flops_per_s={BF16: 2e10, FP8: 2e10},
        launch_s=3e-6,
        setup_s=1e-3,
        init_bytes_per_s=1e9,
        timing=TIMING_TINY,
    )


def trim_to_budget(shapes: Iterable[Shape], budget_s: float, cost: CostModel) -> tuple[list[Shape], list[Shape]]:
    """(kept, dropped): the longest prefix of the priority order whose estimated cost fits `budget_s`.

    Shapes are ordered by priority, so what is dropped first is the densest part of every grid, and what stays
    spans every kind of operation."""
    kept: list[Shape] = []
    dropped: list[Shape] = []
    total = 0.0
    for shape in sorted(shapes, key=_order):
        seconds = cost.seconds(shape)
        if dropped or total + seconds > budget_s:
            dropped.append(shape)
        else:
            kept.append(shape)
            total += seconds
    return kept, dropped


def estimate(shapes: Iterable[Shape], cost: CostModel) -> float:
    return sum(cost.seconds(s) for s in shapes)
