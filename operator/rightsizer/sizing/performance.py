"""Sizing's view of the performance model: the plan's PredictedPerformance record and the default PerformanceHook."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from rightsizer import perf
from rightsizer.api.v1alpha1.plan import PredictedPerformance
from rightsizer.facts.perf_calibration import VLLM, Efficiency
from rightsizer.perf.load import (
    BatchLimit,
    Prediction,
    Slo,
    Traffic,
    largest_batch_within,
    max_concurrency_within,
    max_request_rate,
    predict,
)
from rightsizer.perf.step import Replica, build_replica, has_performance_figures
from rightsizer.sizing.request import Candidate, Floor, SizingRequest


def performance_record(
    r: Replica, prediction: Prediction, slo: Slo, max_rate: float, max_concurrency: int
) -> PredictedPerformance:
    """The prediction as the plan reports it (milliseconds)."""
    load = prediction.traffic
    concurrency = load.concurrency if load.concurrency is not None else prediction.running
    return PredictedPerformance(
        concurrency=round(concurrency, 2),
        ttft_p50_ms=round(prediction.ttft.p50 * 1e3, 1),
        ttft_p95_ms=round(prediction.ttft.p95 * 1e3, 1),
        itl_p50_ms=round(prediction.itl.p50 * 1e3, 2),
        itl_p95_ms=round(prediction.itl.p95 * 1e3, 2),
        ttft_p95_ms_high=round(prediction.ttft_p95_high * 1e3, 1),
        itl_p95_ms_high=round(prediction.itl_p95_high * 1e3, 2),
        interval_basis=f"TTFT: {prediction.ttft_basis}; ITL: {prediction.itl_basis}",
        output_tokens_per_second=round(prediction.output_tokens_per_second, 1),
        max_request_rate=round(max_rate, 3),
        max_concurrency_within_slo=max_concurrency,
        meets_slo=slo.met_by(prediction),
        saturated=prediction.saturated,
        calibrated=r.calibrated,
    )


def clear_caches() -> None:
    """Forget memoised stage costs and capacities (for cold-start measurements)."""
    perf.clear_caches()
    _capacity.cache_clear()


# --- a measured speed ------------------------------------------------------------------------------------------------


class LaidOut(Protocol):
    """What names a layout: a Plan, or the status record of where a speed was measured (MeasuredLayout)."""

    @property
    def gpu_product(self) -> str: ...
    @property
    def tensor_parallel_size(self) -> int: ...
    @property
    def pipeline_parallel_size(self) -> int: ...
    @property
    def expert_parallel(self) -> bool: ...


@dataclass(frozen=True)
class Layout:
    """Where a speed was measured: the GPU product and how the replica splits the model over it."""

    gpu_product: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    expert_parallel: bool

    @staticmethod
    def of(named: LaidOut) -> Layout:
        return Layout(
            named.gpu_product, named.tensor_parallel_size, named.pipeline_parallel_size, named.expert_parallel
        )

    @staticmethod
    def of_candidate(candidate: Candidate) -> Layout:
        s = candidate.settings
        return Layout(candidate.shape.pool.product, s.tensor_parallel_size, s.pipeline_parallel_size, s.expert_parallel)


@dataclass(frozen=True)
class Correction:
    """A deployment's own speed against the model's (scaling.calibration), to size with instead of the model's.

    `prefill`, `decode`: prompt work and decode steps take these many times the model's time (Replica.scaled).
    `slack` and `measured_on`: once the evidence suffices, e^(the factors' half-width) and the layout the metrics
    came from. Candidates of that layout run at a measured speed (Replica.measured: the within-deployment slow
    edges times the slack); every other layout, and any correction without a slack, keeps the model's cross-source
    edges, because how the model's error moves with the GPU, TP, pipeline stages or expert layout was not measured.
    """

    prefill: float
    decode: float
    slack: float | None = None
    measured_on: Layout | None = None

    def on(self, model: Replica, layout: Layout) -> Replica:
        """`model` (a candidate of `layout`) at this speed."""
        if self.slack is not None and layout == self.measured_on:
            return model.measured(self.prefill, self.decode, self.slack)
        return model.scaled(self.prefill, self.decode)

    def __str__(self) -> str:
        return f"prefill ×{self.prefill:.2f}, decode ×{self.decode:.2f}"


# --- sizing's view: the default PerformanceHook ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def _capacity(r: Replica, input_tokens: int, output_tokens: int, slo: Slo) -> tuple[float, int]:
    """Request rate and concurrency one replica serves within `slo` (cached: sizing asks for each replica count)."""
    return (
        max_request_rate(r, input_tokens, output_tokens, slo),
        max_concurrency_within(r, input_tokens, output_tokens, slo),
    )


class SloPerformance:
    """sizing.PerformanceHook backed by this model, for GPUs with bandwidth and FLOP/s figures.

    Predictions use the declared workload's lengths (capped at max_model_len) and the load each replica carries:
    spec.workload.concurrency or .requestRate split over the replicas, or a full replica (max_num_seqs
    concurrent requests) when the workload declares neither.

    `correction` runs every replica at a measured speed instead of the model's (Correction.on): how a deployment is
    re-sized with what its own metrics showed (scaling.recommendation).
    """

    def __init__(self, efficiency: Efficiency = VLLM, correction: Correction | None = None) -> None:
        self.efficiency = efficiency
        self.correction = correction

    def _replica(self, candidate: Candidate, request: SizingRequest) -> Replica | None:
        pool = candidate.shape.pool
        if not has_performance_figures(pool.gpu):
            return None
        replica = build_replica(
            request.facts,
            candidate.settings,
            pool.gpu,
            candidate.memory,
            gpus_per_node=pool.gpus_per_node,
            efficiency=self.efficiency,
        )
        return replica if self.correction is None else self.correction.on(replica, Layout.of_candidate(candidate))

    @staticmethod
    def _lengths(candidate: Candidate, request: SizingRequest) -> tuple[int, int]:
        w, limit = request.spec.workload, candidate.settings.max_model_len
        prompt = min(w.input_tokens, limit - 1)
        return prompt, max(1, min(w.output_tokens, limit - prompt))

    @staticmethod
    def _slo(request: SizingRequest) -> Slo:
        slo = request.spec.slo
        return Slo(
            ttft_p95_s=slo.ttft_p95_ms / 1e3 if slo.ttft_p95_ms else None,
            itl_p95_s=slo.itl_p95_ms / 1e3 if slo.itl_p95_ms else None,
        )

    def batch_limit(self, candidate: Candidate, request: SizingRequest) -> BatchLimit | None:
        target = request.spec.slo.itl_p95_ms
        r = self._replica(candidate, request)
        if r is None or target is None:
            return None
        return largest_batch_within(r, *self._lengths(candidate, request), target / 1e3)

    def predict(self, candidate: Candidate, request: SizingRequest, replicas: int) -> PredictedPerformance | None:
        r = self._replica(candidate, request)
        if r is None:
            return None
        prompt, output = self._lengths(candidate, request)
        slo = self._slo(request)
        rate, concurrency = _capacity(r, prompt, output, slo)
        w, share = request.spec.workload, max(replicas, 1)
        if w.concurrency:
            traffic = Traffic(prompt, output, concurrency=w.concurrency / share)
        elif w.request_rate:
            traffic = Traffic(prompt, output, request_rate=w.request_rate / share)
        else:
            traffic = Traffic(prompt, output, concurrency=float(r.max_num_seqs))
        return performance_record(r, predict(r, traffic), slo, rate, concurrency)

    def floor(self, candidate: Candidate, request: SizingRequest) -> Floor | None:
        r = self._replica(candidate, request)
        if r is None:
            return None
        alone = predict(r, Traffic(*self._lengths(candidate, request), concurrency=1.0))
        return Floor(ttft_p95_ms=alone.ttft_p95_high * 1e3, itl_p95_ms=alone.itl_p95_high * 1e3)
