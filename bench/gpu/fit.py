"""Refit the performance model's hardware efficiency factors from measured kernel times.

The model (operator/rightsizer/perf/step.py) prices a linear layer as

    t = max(weight bytes / (hbm × peak HBM bandwidth),  FLOPs / (compute × peak dense FLOP/s))

with the peaks from facts/gpus.py (the FP8 peak for FP8 weights) and `hbm`, `compute` from
facts/perf_calibration.py's `Efficiency`. Given measured times, the fit finds the (hbm, compute) that minimise the
squared log error of that prediction: the same loss bench/latency_model.py --fit uses on published latencies.

The minimum is found exactly. With d = ln hbm − ln compute, a point is memory-bound iff its ratio
s = ln(memory time at peak / compute time at peak) exceeds d, so sorting the points by s, every partition into
compute-bound and memory-bound points is a prefix and a suffix. Within one partition the loss is separable and
its minimum is the mean log efficiency of each side; where that minimum falls outside the partition the optimum
lies on a boundary d = s_k, again in closed form. Trying every prefix and every boundary (with running sums)
covers the whole plane. A factor with fewer than `min_points` points bound by it is reported as not identified
(None), as a decode-only run leaves `compute` free.

Pure Python (no numpy): it runs on the GPU machine, where only torch is installed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rightsizer.facts.gpus import GpuProduct
from rightsizer.facts.perf_calibration import Efficiency


@dataclass(frozen=True)
class Sample:
    """One measured operation, in the performance model's terms."""

    model_bytes: float  # bytes the model counts (weights, or the KV cache for attention)
    flops: float
    seconds: float
    peak_bytes_per_s: float  # datasheet HBM bandwidth
    peak_flops_per_s: float  # datasheet dense peak of the operation's format

    @property
    def memory_seconds(self) -> float:
        """Time at 100 % of the datasheet bandwidth."""
        return self.model_bytes / self.peak_bytes_per_s

    @property
    def compute_seconds(self) -> float:
        return self.flops / self.peak_flops_per_s

    @property
    def hbm_fraction(self) -> float:
        """Achieved share of the datasheet bandwidth, counting the model's bytes."""
        return self.memory_seconds / self.seconds

    @property
    def compute_fraction(self) -> float:
        return self.compute_seconds / self.seconds


@dataclass(frozen=True)
class RooflineFit:
    hbm: float | None  # None: too few memory-bound points to identify it
    compute: float | None
    points: int
    memory_bound: int
    compute_bound: int
    rms_log_error: float  # root mean squared ln(predicted / measured)

    def memory_bound_at(self, s: Sample) -> bool:
        """Whether the fitted roofline prices `s` by its bytes (an unidentified factor never binds)."""
        if self.hbm is None:
            return False
        if self.compute is None:
            return True
        return s.memory_seconds / self.hbm >= s.compute_seconds / self.compute

    def predict(self, s: Sample) -> float:
        memory = s.memory_seconds / self.hbm if self.hbm is not None else 0.0
        compute = s.compute_seconds / self.compute if self.compute is not None else 0.0
        return max(memory, compute)


MIN_POINTS = 3


def fit_roofline(samples: Sequence[Sample], *, min_points: int = MIN_POINTS) -> RooflineFit:
    """The (hbm, compute) minimising Σ ln²(max(memory_i / hbm, compute_i / compute) / measured_i).

    Only points with bytes, FLOPs and a time enter (a copy has no FLOPs: it says nothing about the trade-off)."""
    usable = [s for s in samples if s.model_bytes > 0 and s.flops > 0 and s.seconds > 0]
    n = len(usable)
    if n == 0:
        return RooflineFit(None, None, 0, 0, 0, math.nan)
    pts = sorted(
        (math.log(s.memory_seconds / s.compute_seconds), math.log(s.hbm_fraction), math.log(s.compute_fraction))
        for s in usable
    )
    ratio = [p[0] for p in pts]
    # u: ln(memory fraction), summed over suffixes (the memory-bound side); v: ln(compute fraction), prefixes.
    pre_v, pre_v2 = [0.0] * (n + 1), [0.0] * (n + 1)
    for i, (_, _, v) in enumerate(pts):
        pre_v[i + 1], pre_v2[i + 1] = pre_v[i] + v, pre_v2[i] + v * v
    suf_u, suf_u2 = [0.0] * (n + 1), [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        u = pts[i][1]
        suf_u[i], suf_u2[i] = suf_u[i + 1] + u, suf_u2[i + 1] + u * u

    def loss(j: int, x: float | None, y: float | None) -> float:
        """The first j points compute-bound at ln compute = y, the rest memory-bound at ln hbm = x."""
        total = 0.0
        if x is not None:
            total += suf_u2[j] - 2 * x * suf_u[j] + (n - j) * x * x
        if y is not None:
            total += pre_v2[j] - 2 * y * pre_v[j] + j * y * y
        return max(total, 0.0)  # running sums can round a zero loss slightly negative

    best: tuple[float, int, float | None, float | None] | None = None
    for j in range(n + 1):
        x = suf_u[j] / (n - j) if j < n else None
        y = pre_v[j] / j if j > 0 else None
        if x is not None and y is not None:
            lower = ratio[j - 1]
            upper = ratio[j] if j < n else math.inf
            if not lower <= x - y <= upper:
                continue  # this partition's optimum belongs to another partition
        candidate = (loss(j, x, y), j, x, y)
        if best is None or candidate[0] < best[0]:
            best = candidate
    for k in range(n):  # on the boundary d = ratio[k]: points up to k compute-bound
        j, d = k + 1, ratio[k]
        x = (suf_u[j] + pre_v[j] + j * d) / n
        candidate = (loss(j, x if j < n else None, x - d), j, x if j < n else None, x - d)
        if best is None or candidate[0] < best[0]:
            best = candidate
    assert best is not None
    total, j, x, y = best
    hbm = math.exp(x) if x is not None and n - j >= min_points else None
    compute = math.exp(y) if y is not None and j >= min_points else None
    return RooflineFit(hbm, compute, n, n - j, j, math.sqrt(total / n))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def variable_name(product: GpuProduct) -> str:
    return "KERNELS_" + re.sub(r"[^A-Z0-9]+", "_", product.short_name.upper()).strip("_")


def snippet(
    fit: RooflineFit, *, product: GpuProduct, device: str, shipped: Efficiency, provenance: str, shapes: str
) -> str:
    """Python to paste into facts/perf_calibration.py: the measured kernel-level factors, named for the GPU.

    Only hbm and compute are measured; the link and the fixed costs need several GPUs or a running engine, so
    they are taken from `shipped` (VLLM) and say so."""

    def factor(value: float | None, fallback: float, name: str) -> str:
        if value is None:
            return f"    {name}=VLLM.{name},  # not identified by these measurements"
        return f"    {name}={value:.4g},  # VLLM (published fit): {fallback:.3f}"

    source = f"bench/gpu/calibrate.py on {device} ({product.product}), {provenance}"
    lines = [
        f"# Measured by bench/gpu/calibrate.py on {device} ({product.product}), {provenance}.",
        f"# Roofline fit over {fit.points} {shapes} ({fit.memory_bound} memory-bound, {fit.compute_bound}"
        f" compute-bound), RMS log error {fit.rms_log_error:.3f}.",
        "# Kernel ceilings (PyTorch and cuBLAS alone, no engine): an engine-level fit should not exceed them.",
        f"{variable_name(product)} = Efficiency(",
        factor(fit.hbm, shipped.hbm, "hbm"),
        factor(fit.compute, shipped.compute, "compute"),
        "    link=VLLM.link,  # not measured: one GPU",
        "    allreduce_latency_s=VLLM.allreduce_latency_s,  # not measured: one GPU",
        "    step_overhead_s=VLLM.step_overhead_s,  # an engine's cost, not a kernel's",
        "    request_overhead_s=VLLM.request_overhead_s,  # an engine's cost, not a kernel's",
        f"    source={json.dumps(source, ensure_ascii=False)},",  # a double-quoted Python string literal
        ")",
    ]
    return "\n".join(lines) + "\n"
