"""How close the sizing engine's KV-cache prediction comes to what vLLM logs, against two naive formulas in the
same run, and how fast a plan is computed.

    python bench/sizing_accuracy.py            # the table and the summary
    python bench/sizing_accuracy.py --json     # machine-readable

Calibration set: ../shared/data/calibration/vllm-0.19.0-h100.csv (vLLM 0.19.0 startup logs on H100-80GB).
Baselines:
  rule-of-thumb  weights × 1.2 (M = P × 4 B / (32/Q) × 1.2) take the rest of the budget; KV bytes per token from
                 the model with grouped-query attention
  azure-formula  the ND H200 v5 article's formula: batch × seq × 2 × layers × heads × head_dim × bytes, on the
                 marketing memory (80 GB) minus P × bytes; counts every attention head (no GQA)
KV GiB errors of pipeline-parallel rows compare the binding (last) stage with the log's stage-0 figure, so they
include the real difference between stages (about 0.9 GiB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration_set import CalibrationPoint, csv_path, points
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import GIB, profile_for
from rightsizer.model.config import ModelFacts, QuantFormat, parse
from rightsizer.model.memory import DTYPE_BYTES, FP8_KV_DTYPES, clear_caches, replica_memory
from rightsizer.model.params import total_parameters
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.performance import clear_caches as clear_performance_caches
from rightsizer.sizing.pools import default_pools

H100_MARKETING_BYTES = 80e9
WEIGHT_BYTES = {QuantFormat.NONE: None, QuantFormat.FP8: 1.0, QuantFormat.W8A8: 1.0, QuantFormat.W4A16_GPTQ: 0.5}


@dataclass(frozen=True)
class Prediction:
    tokens: float
    kv_gib: float


def _weight_bytes(point: CalibrationPoint) -> float:
    per_param = WEIGHT_BYTES.get(point.settings.weight_format) or DTYPE_BYTES[point.settings.dtype]
    return total_parameters(point.facts) * per_param


def _kv_bytes(point: CalibrationPoint) -> int:
    s = point.settings
    return 1 if s.kv_cache_dtype in FP8_KV_DTYPES else DTYPE_BYTES[s.dtype]


def _gpus(point: CalibrationPoint) -> int:
    return point.settings.tensor_parallel_size * point.settings.pipeline_parallel_size


def rightsizer(point: CalibrationPoint) -> Prediction:
    memory = replica_memory(point.facts, point.settings, lookup("H100"), profile_for(point.row["vllm_version"]))
    return Prediction(memory.kv_cache_tokens, memory.binding.kv_cache / GIB)


def rule_of_thumb(point: CalibrationPoint) -> Prediction:
    f = point.facts
    budget = lookup("H100").torch_total_gib * GIB * point.settings.gpu_memory_utilization
    kv = budget - 1.2 * _weight_bytes(point) / _gpus(point)
    per_token = 2 * f.num_layers * f.attention.num_kv_heads * f.attention.head_dim * _kv_bytes(point) / _gpus(point)
    return Prediction(max(kv, 0) / per_token, kv / GIB)


def azure_formula(point: CalibrationPoint) -> Prediction:
    f = point.facts
    free = H100_MARKETING_BYTES * _gpus(point) - _weight_bytes(point)
    per_token = 2 * f.num_layers * f.attention.num_heads * f.attention.head_dim * _kv_bytes(point)
    return Prediction(max(free, 0) / per_token, free / _gpus(point) / GIB)


METHODS = {"rightsizer": rightsizer, "rule-of-thumb": rule_of_thumb, "azure-formula": azure_formula}


def accuracy() -> dict[str, dict[str, float]]:
    summary = {}
    pts = points()
    for name, method in METHODS.items():
        token_errors, gib_errors = [], []
        for point in pts:
            predicted = method(point)
            logged_tokens = float(point.row["kv_cache_tokens"])
            token_errors.append(abs(predicted.tokens - logged_tokens) / logged_tokens * 100)
            gib_errors.append(abs(predicted.kv_gib - float(point.row["kv_cache_memory_gib"])))
        summary[name] = {
            "points": len(pts),
            "tokensMeanAbsErrPct": statistics.fmean(token_errors),
            "tokensMaxAbsErrPct": max(token_errors),
            "kvGiBMeanAbsErr": statistics.fmean(gib_errors),
            "kvGiBMaxAbsErr": max(gib_errors),
        }
    return summary


def _time_plans(runs: int, cold: bool) -> list[float]:
    name = "meta-llama/Llama-3.1-405B-Instruct"
    facts: ModelFacts = parse(catalog.lookup(name) or {})
    spec = LLMDeploymentSpec.model_validate({"model": {"name": name}, "workload": {"concurrency": 64}})
    pools = default_pools()
    timings = []
    for _ in range(runs):
        if cold:  # forget the per-model parameter inventory and per-shape weight totals
            clear_caches()
            clear_performance_caches()
        start = time.perf_counter()
        plan(SizingRequest(spec, facts, pools), name)
        timings.append((time.perf_counter() - start) * 1000)
    return sorted(timings)


def plan_latency(runs: int) -> dict[str, float]:
    """plan() for Llama-3.1-405B over one pool of every known product: cold (first plan for a model) and warm."""
    cold, warm = _time_plans(runs, cold=True), _time_plans(runs, cold=False)
    return {
        "runs": runs,
        "coldMedianMs": statistics.median(cold),
        "coldP95Ms": cold[int(0.95 * (runs - 1))],
        "warmMedianMs": statistics.median(warm),
        "targetMs": 50.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=30, help="plan() timing runs")
    args = parser.parse_args()
    result = {"calibration": str(csv_path()), "accuracy": accuracy(), "planLatency": plan_latency(args.runs)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"calibration set: {result['calibration']} ({result['accuracy']['rightsizer']['points']} vLLM starts)")
    print(
        f"{'method':15s} {'tokens mean|err|':>17s} {'tokens max|err|':>16s} {'KV GiB mean|err|':>17s} "
        f"{'KV GiB max|err|':>16s}"
    )
    base = result["accuracy"]["rightsizer"]["tokensMeanAbsErrPct"]
    for name, row in result["accuracy"].items():
        print(
            f"{name:15s} {row['tokensMeanAbsErrPct']:16.2f}% {row['tokensMaxAbsErrPct']:15.2f}% "
            f"{row['kvGiBMeanAbsErr']:17.2f} {row['kvGiBMaxAbsErr']:16.2f}"
            + ("" if name == "rightsizer" else f"   ({row['tokensMeanAbsErrPct'] / base:,.0f}x rightsizer's error)")
        )
    lat = result["planLatency"]
    print(
        f"plan() for Llama-3.1-405B over {len(default_pools())} GPU products, {lat['runs']} runs each: cold median "
        f"{lat['coldMedianMs']:.1f} ms (p95 {lat['coldP95Ms']:.1f}), warm median {lat['warmMedianMs']:.1f} ms "
        f"(target < {lat['targetMs']:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
