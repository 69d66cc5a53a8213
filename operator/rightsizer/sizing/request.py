"""What sizing works on: the request (spec, model facts, pools), the shapes it tries, the candidates and
rejections it finds, the per-request basics every shape shares, and the PerformanceHook it asks for predictions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import PredictedPerformance
from rightsizer.facts.vllm_profiles import VllmProfile, profile_for
from rightsizer.model.config import ModelFacts
from rightsizer.model.memory import (
    EngineSettings,
    ReplicaMemory,
)
from rightsizer.model.multimodal import MultimodalServing, multimodal_serving
from rightsizer.model.quantization import WeightChoice, resolve_weights
from rightsizer.perf import BatchLimit
from rightsizer.sizing.batch import BatchLimits, BatchRules, batch_rules
from rightsizer.sizing.extra_args import read_extra_args
from rightsizer.sizing.pools import GpuPool


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
    expert_parallel: bool = False  # --enable-expert-parallel: each GPU holds whole experts (EP = TP)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.gpus / self.pool.gpus_per_node))

    def label(self) -> str:
        layout = f"{self.pool.name} TP{self.tp}×PP{self.pp}"
        return layout + " with expert parallelism" if self.expert_parallel else layout


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
    defaults: BatchLimits | None = None  # the limits vLLM's defaults (or spec.serving's pins) start from
    # When the defaults leave no room for one request: the largest limits that fit, and the KV memory per GPU
    # (bytes, negative when overdrawn) the defaults would have left.
    fitted: BatchLimits | None = None
    defaults_kv_cache: float | None = None

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
    pins_limit: bool = False  # spec.serving's batch pins keep it out: it fits with smaller limits


@dataclass
class SearchResult:
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class Floor:
    """The best a candidate can do: one request alone, at the pessimistic edge of the prediction (milliseconds)."""

    ttft_p95_ms: float
    itl_p95_ms: float


class PerformanceHook(Protocol):
    """What sizing asks of a performance model (sizing.performance.SloPerformance unless told otherwise).

    Sizing caps max_num_seqs with batch_limit, counts replicas for spec.workload from predict's capacity
    (maxConcurrencyWithinSLO, maxRequestRate), and prefers plans that meet spec.slo. None means "no figures".
    """

    def batch_limit(self, candidate: Candidate, request: SizingRequest) -> BatchLimit | None: ...

    def predict(self, candidate: Candidate, request: SizingRequest, replicas: int) -> PredictedPerformance | None: ...

    def floor(self, candidate: Candidate, request: SizingRequest) -> Floor | None: ...


class MemoryOnly:
    """A hook with no performance model: plans from memory alone (the behaviour before issue 6)."""

    def batch_limit(self, candidate: Candidate, request: SizingRequest) -> BatchLimit | None:
        return None

    def predict(self, candidate: Candidate, request: SizingRequest, replicas: int) -> PredictedPerformance | None:
        return None

    def floor(self, candidate: Candidate, request: SizingRequest) -> Floor | None:
        return None


MEMORY_ONLY = MemoryOnly()


@dataclass(frozen=True)
class Basics:
    """Per-request inputs shared by every shape."""

    profile: VllmProfile
    weights: WeightChoice
    max_model_len: int
    workload_tokens: int
    kv_cache_dtype: str
    batch: BatchRules
    multimodal: MultimodalServing


def basics(request: SizingRequest) -> Basics:
    spec, facts = request.spec, request.facts
    extra = read_extra_args(spec.serving.engine.version, spec.serving.engine.extra_args)
    profile = profile_for(spec.serving.engine.version)
    weights = resolve_weights(spec.model, facts)
    max_len = min(spec.serving.max_model_len or facts.default_max_model_len, facts.max_model_len_limit)
    workload = min(spec.workload.input_tokens + spec.workload.output_tokens, max_len)
    kv_dtype = "fp8" if spec.serving.kv_cache_dtype.value == "fp8" else "auto"
    batch = batch_rules(spec.serving, max_len, chunked_prefill=extra.chunked_prefill)
    return Basics(profile, weights, max_len, workload, kv_dtype, batch, multimodal_serving(spec, facts))
