"""The published vLLM V1 latency corpus (bench/data/latency-published.csv, described in latency-published.md): rows,
their kind (GPU × architecture family × concurrency band), and the replica each row describes.

A row names a model by its Hugging Face id. Its architecture comes from the built-in catalog, or from the catalog
entry of a checkpoint with the same config.json architecture keys (TWINS below, each with its reason); the row's
`quantization` column says how the weights are stored. Rows whose model has no config here, or whose settings do
not fit in memory, are skipped and counted, never guessed.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from rightsizer.facts import catalog, gpus
from rightsizer.facts.perf_calibration import Efficiency
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.checkpoint_quant import checkpoint_quantization
from rightsizer.model.config import ModelFacts, WeightFormat, parse
from rightsizer.model.memory import EngineSettings, ReplicaMemory, replica_memory
from rightsizer.model.params import Stage, active_count, inventory
from rightsizer.perf import Replica, build_replica
from rightsizer.perf.step import gemm_peak_tflops
from rightsizer.perf.uncertainty import band_of, family_of

DATA = Path(__file__).resolve().parent / "data" / "latency-published.csv"
# Verified rows held back until the model handles the releases they measure (latency-published.md says why).
PENDING = DATA.parent / "latency-pending.csv"

# Checkpoints whose config.json has the same architecture keys as a catalog entry (they differ in weights, chat
# template, quantization or rope/context settings only; quantization comes from the row itself).
TWINS = {
    # Instruct-2507 re-trains the weights; hidden/layers/heads/experts are those of Qwen3-235B-A22B.
    "qwen/qwen3-235b-a22b-instruct-2507": "Qwen/Qwen3-235B-A22B",
    "qwen/qwen3-235b-a22b-instruct-2507-fp8": "Qwen/Qwen3-235B-A22B",
    # R1-0528 is a post-training update of R1 (the same DeepseekV3ForCausalLM shape).
    "deepseek-ai/deepseek-r1-0528": "deepseek-ai/DeepSeek-R1",
    # Quantized releases of the same models (Qwen's own FP8 and AWQ checkpoints).
    "qwen/qwen3-14b-fp8": "Qwen/Qwen3-14B",
    "qwen/qwen3-14b-awq": "Qwen/Qwen3-14B",
    "qwen/qwen3-32b-fp8": "Qwen/Qwen3-32B",
    "qwen/qwen3-32b-awq": "Qwen/Qwen3-32B",
    # Qwen's own FP8 release of Qwen3.5-35B-A3B (the same weights, block-wise FP8; its config.json was not read here).
    "qwen/qwen3.5-35b-a3b-fp8": "Qwen/Qwen3.5-35B-A3B",
    # Qwen2-7B and Qwen2.5-7B share hidden 3584, 28 layers, 28/4 heads, intermediate 18944, vocab 152064.
    "qwen/qwen2-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
    "qwen/qwen2.5-32b": "Qwen/Qwen2.5-32B-Instruct",
    # FP8 releases of catalog models (Qwen's own; NVIDIA's ModelOpt export): the same architecture keys.
    "qwen/qwen3-235b-a22b-fp8": "Qwen/Qwen3-235B-A22B",
    "nvidia/llama-3.1-8b-instruct-fp8": "meta-llama/Llama-3.1-8B-Instruct",
}

# The row's `quantization` -> the weight format vLLM loads (for checkpoints whose catalog config says nothing).
FORMATS = {
    "bf16": WeightFormat.NONE,
    "fp16": WeightFormat.NONE,
    "fp8": WeightFormat.FP8,
    "awq": WeightFormat.W4A16_AWQ,
    "w4a16": WeightFormat.W4A16_GPTQ,
    "int4": WeightFormat.W4A16_GPTQ,
    "gptq": WeightFormat.W4A16_GPTQ,
    "mxfp4": WeightFormat.MXFP4,
    "nvfp4": WeightFormat.NVFP4,
}
# The quantization_config of a typical checkpoint in each format, for rows whose model's catalog config is the
# unquantized one (Qwen's own -AWQ and -FP8 releases, self-quantized checkpoints), read by the operator's own parser
# so the bench and the operator count the same bytes: AutoAWQ's defaults (Qwen/Qwen3-14B-AWQ: 4 bits, group 128,
# zero points), GPTQ's usual symmetric group-128 export, and fp8 with 128x128 blocks (Qwen/Qwen3-14B-FP8).
QUANTIZATION_CONFIGS: dict[WeightFormat, dict[str, object]] = {
    WeightFormat.W4A16_AWQ: {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True},
    WeightFormat.W4A16_GPTQ: {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False},
    WeightFormat.FP8: {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
    WeightFormat.MXFP4: {"quant_method": "mxfp4"},
    WeightFormat.NVFP4: {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16},
}
# Twins whose own release is quantized otherwise than the format's typical checkpoint above: NVIDIA's ModelOpt FP8
# export ("quantized with TensorRT Model Optimizer", https://huggingface.co/nvidia/Llama-3.1-8B-Instruct-FP8; its
# quant_algo FP8 has one scale per tensor, FP8_PB_WO is ModelOpt's block recipe: model/checkpoint_quant.py).
TWIN_QUANTIZATION: dict[str, dict[str, object]] = {
    "nvidia/llama-3.1-8b-instruct-fp8": {"quant_method": "modelopt", "quant_algo": "FP8"},
}
_PROMPTS = re.compile(r"(\d[\d,]*)\s+(?:prompts|requests)")


class RowSkippedError(Exception):
    """A row this corpus cannot predict (no config for the model, or settings that do not fit): counted, not guessed."""


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line in the CSV, so a person can find it
    source: str
    model: str
    gpu: str
    tp: int
    pp: int
    ep: int
    vllm_version: str
    quantization: str
    kv_cache_dtype: str
    max_num_batched_tokens: int | None
    input_tokens: float
    output_tokens: float
    concurrency: float | None
    request_rate: float | None  # inf: every request sent at once
    ttft_ms: float | None
    ttft_stat: str
    itl_ms: float | None
    itl_stat: str
    output_tokens_per_s: float | None
    split: str
    notes: str

    @property
    def source_key(self) -> str:
        """The source without its line anchor: the unit of leave-one-source-out cross-validation."""
        base = re.sub(r"\s*\(L\d+[^)]*\)$", "", self.source)
        return base.split("#")[0]

    @property
    def burst(self) -> int | None:
        """Requests sent all at once (request rate inf, or a rate so high every request arrives within a second)."""
        if self.concurrency is not None or self.request_rate is None:
            return None
        found = _PROMPTS.search(self.notes)
        total = int(found.group(1).replace(",", "")) if found else None
        if math.isinf(self.request_rate):
            return total
        if total is not None and self.request_rate >= total:
            return total
        return None

    @property
    def varied_lengths(self) -> bool:
        """Conversation datasets (ShareGPT) mix short and long requests; `random` datasets fix every length."""
        return "sharegpt" in self.notes.lower()

    @property
    def closed_loop(self) -> bool:
        """Whether the client's concurrency cap set the load. A run with both a cap (`--max-concurrency`) and a
        finite arrival rate holds min(cap, rate x latency) requests: the rate binds while Little's law on the
        measured latencies keeps the load under the cap."""
        if self.concurrency is None:
            return False
        if self.request_rate is None or math.isinf(self.request_rate):
            return True
        return self._little() >= self.concurrency

    @property
    def queue_bound(self) -> bool:
        """Whether the server's admission limit, not the engine's speed, set the row's latencies: a steady run (not a
        burst) whose measured TTFT is longer than its output took to stream, (output − 1) × ITL. Most of its
        requests then wait to be admitted at any moment, behind a max-num-seqs or KV cache the source's serve flags
        set and may not state (gpt-oss-120b at 512 users: 118 s to the first token, 29 s of streaming). From the
        row's own figures, so it does not depend on the model."""
        if self.burst is not None or not self.ttft_ms or not self.itl_ms:
            return False
        return self.ttft_ms > self.streaming_ms

    @property
    def streaming_ms(self) -> float:
        """How long a request's output took to stream after its first token, by the row's figures: (out − 1) × ITL."""
        return (self.itl_ms or 0.0) * max(self.output_tokens - 1, 0)

    @property
    def latency_s(self) -> float:
        """A request's measured end-to-end latency: TTFT and the streaming after it."""
        return ((self.ttft_ms or 0.0) + self.streaming_ms) / 1e3

    def _little(self) -> float:
        return max(1.0, (self.request_rate or 0.0) * self.latency_s)

    @property
    def load(self) -> float:
        """Requests in the system, by Little's law on the measured figures where the row gives a rate."""
        if self.concurrency is not None and self.closed_loop:
            return self.concurrency
        if self.burst is not None:
            return float(self.burst)
        assert self.request_rate is not None
        return self._little()

    @property
    def band(self) -> str:
        return band_of(self.load)


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def load(path: Path = DATA) -> list[Row]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for line, r in enumerate(reader, start=2):
            rows.append(
                Row(
                    line=line,
                    source=r["source"],
                    model=r["model"],
                    gpu=r["gpu"],
                    tp=int(r["tp"] or 1),
                    pp=int(r["pp"] or 1),
                    ep=int(r["ep"] or 1),
                    vllm_version=r["vllm_version"],
                    quantization=r["quantization"].strip().lower(),
                    kv_cache_dtype=(r["kv_cache_dtype"] or "auto").strip().lower(),
                    max_num_batched_tokens=int(float(r["max_num_batched_tokens"]))
                    if r["max_num_batched_tokens"].strip()
                    else None,
                    input_tokens=float(r["input_tokens"]),
                    output_tokens=float(r["output_tokens"]),
                    concurrency=_number(r["concurrency"]),
                    request_rate=_number(r["request_rate"]),
                    ttft_ms=_number(r["ttft_ms"]),
                    ttft_stat=r["ttft_stat"].strip(),
                    itl_ms=_number(r["itl_ms"]),
                    itl_stat=r["itl_stat"].strip(),
                    output_tokens_per_s=_number(r["output_tokens_per_s"]),
                    split=r["split"].strip(),
                    notes=r["notes"],
                )
            )
    return rows


# --- the model a row describes ---------------------------------------------------------------------------------------


@cache
def base_facts(model: str) -> ModelFacts:
    config = catalog.lookup(model) or catalog.lookup(TWINS.get(model.lower(), ""))
    if config is None:
        raise RowSkippedError(f"no config.json for {model} in the catalog")
    return parse(config)


def facts_of(row: Row) -> ModelFacts:
    facts = base_facts(row.model)
    wanted = FORMATS.get(row.quantization)
    if wanted is None:
        raise RowSkippedError(f"quantization {row.quantization!r} is not modelled")
    if facts.quantization is not None and facts.quantization.format == wanted:
        return facts
    if wanted == WeightFormat.NONE:
        return replace(facts, quantization=None)
    config = TWIN_QUANTIZATION.get(row.model.lower(), QUANTIZATION_CONFIGS[wanted])
    return replace(facts, quantization=checkpoint_quantization({"quantization_config": config}))


def settings_of(row: Row, facts: ModelFacts) -> EngineSettings:
    gpu = gpus.lookup(row.gpu)
    profile = profile_for(row.vllm_version)
    tier = profile.tier(gpu.torch_total_gib, gpu.product)
    quant = facts.quantization
    return EngineSettings(
        # With expert parallelism EP = TP x DP ranks serve one replica: model them as that many TP ranks.
        tensor_parallel_size=max(row.tp, row.ep),
        pipeline_parallel_size=row.pp,
        max_num_seqs=tier.max_num_seqs,
        max_num_batched_tokens=row.max_num_batched_tokens or tier.max_num_batched_tokens,
        max_model_len=min(facts.default_max_model_len, facts.max_model_len_limit, 32768 * 4),
        gpu_memory_utilization=profile.default_gpu_memory_utilization,
        dtype="bfloat16",
        kv_cache_dtype="fp8" if row.kv_cache_dtype.startswith("fp8") else "auto",
        weight_format=quant.format if quant is not None else WeightFormat.NONE,
        group_size=quant.group_size if quant is not None else None,
    )


@cache
def _memory(row: Row) -> tuple[ModelFacts, EngineSettings, ReplicaMemory]:
    facts = facts_of(row)
    settings = settings_of(row, facts)
    gpu = gpus.lookup(row.gpu)
    memory = replica_memory(facts, settings, gpu, profile_for(row.vllm_version))
    if not memory.fits:
        # The publisher ran it, so it fit with their max_model_len; ours is the model's default. Shorten it.
        settings = replace(settings, max_model_len=min(settings.max_model_len, 16384))
        memory = replica_memory(facts, settings, gpu, profile_for(row.vllm_version))
        if not memory.fits:
            raise RowSkippedError(f"{row.model} TP{row.tp} does not fit on {row.gpu} in rightsizer's accounting")
    return facts, settings, memory


def replica(row: Row, efficiency: Efficiency) -> Replica:
    facts, settings, memory = _memory(row)
    return build_replica(facts, settings, gpus.lookup(row.gpu), memory, efficiency=efficiency)


def kind(row: Row) -> tuple[str, str, str]:
    """(GPU, family, band): the kind of point an interval is kept for."""
    return row.gpu, family_of(_memory(row)[0]), row.band


def _layer_weights_per_token(f: ModelFacts) -> int:
    """Weights of the decoder layers' linear layers one token multiplies (routed experts: its share of them)."""
    return sum(active_count(g, f) for g in inventory(f) if g.stage == Stage.LAYER and g.quantizable)


def implied_gemm_share(row: Row) -> float | None:
    """The share of the replica's datasheet dense GEMM peak that a closed-loop row's own figures imply for the
    decoder layers' weight GEMMs alone: requests per second by Little's law (concurrency over TTFT plus the
    remaining tokens' gaps), times the tokens each carries (prompt and output), times 2 FLOPs per weight. Attention,
    the LM head, norms and the CPU are left out, so the true share is higher: past 1 the row cannot be the stated
    load on one replica (a misread unit, or a concurrency spread over several engines), and a lone large GEMM
    reaches about 0.8 (bench/latency_model.py BOUNDS). Independent of the performance model, so it can disagree
    with it. None for rows without a concurrency-bound load and both latencies, or without a config here."""
    if not row.closed_loop or row.concurrency is None or not row.ttft_ms or not row.itl_ms:
        return None
    try:
        facts, settings, _ = _memory(row)
    except RowSkippedError:
        return None
    tokens_per_s = row.concurrency / row.latency_s * (row.input_tokens + row.output_tokens)
    gpu_count = settings.tensor_parallel_size * settings.pipeline_parallel_size
    peak = gemm_peak_tflops(gpus.lookup(row.gpu), settings) * 1e12 * gpu_count
    return 2.0 * _layer_weights_per_token(facts) * tokens_per_s / peak
