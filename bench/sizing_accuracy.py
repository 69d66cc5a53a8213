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
Held out: the sweep's other 29 starts (tests/data/vllm-0.19.0-h100-heldout.csv: architectures never calibrated on),
each row printed with rightsizer's signed token error; models without a catalog config.json are listed, not sized.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration_set import CHECKPOINTS, HELD_OUT_CSV, CalibrationPoint, csv_path, held_out_points, points
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import GIB, profile_for
from rightsizer.model.config import ModelFacts, WeightFormat, parse
from rightsizer.model.memory import DTYPE_BYTES, FP8_KV_DTYPES, clear_caches, replica_memory
from rightsizer.model.params import total_parameters
from rightsizer.sizing import MEMORY_ONLY, SizingRequest, plan
from rightsizer.sizing.performance import clear_caches as clear_performance_caches
from rightsizer.sizing.pools import GpuPool, default_pools

H100_MARKETING_BYTES = 80e9
WEIGHT_BYTES = {WeightFormat.NONE: None, WeightFormat.FP8: 1.0, WeightFormat.W8A8: 1.0, WeightFormat.W4A16_GPTQ: 0.5}


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


# The quantization_config of each pre-quantized checkpoint of the sweep, as its published config.json has it
# (huggingface.co/<model>/blob/main/config.json: llm-compressor's compressed-tensors schemes, lm_head left in bf16).
def _scheme(bits: int, kind: str, strategy: str, group: int | None = None) -> dict[str, object]:
    weights: dict[str, object] = {"num_bits": bits, "type": kind, "symmetric": True, "strategy": strategy}
    if group is not None:
        weights["group_size"] = group
    return {
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights}},
        "ignore": ["lm_head"],
    }


QUANTIZATION_CONFIGS = {
    "RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic": _scheme(8, "float", "channel"),
    "redhatai/Llama-3.3-70B-Instruct-quantized.w8a8": _scheme(8, "int", "channel"),
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16": _scheme(4, "int", "group", 128),
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8": _scheme(8, "int", "channel"),
}
# What each start of the sweep ran with where the CSV has no column for it: vLLM 0.19's server defaults on H100
# (../shared/data/calibration/README.md: "server defaults otherwise"; vllm/engine/arg_utils.py at v0.19.0).
SWEEP_MAX_NUM_SEQS, SWEEP_MAX_NUM_BATCHED_TOKENS = 1024, 8192
H100_POOL = [GpuPool("h100", lookup("H100"), 8, None, None)]


def pinned_spec(point: CalibrationPoint) -> LLMDeploymentSpec:
    """The LLMDeployment a platform engineer writes to reproduce one logged start: every setting vLLM logged,
    max_num_seqs and max_num_batched_tokens included, pinned."""
    r = point.row
    return LLMDeploymentSpec.model_validate(
        {
            "model": {
                "name": r["model"],
                "dtype": r["dtype"].removeprefix("torch."),
                "quantization": "fp8" if r["quantization"] == "fp8" else "auto",
            },
            "serving": {
                "maxModelLen": int(r["max_model_len"]),
                "kvCacheDtype": "fp8" if r["kv_cache_dtype"] in FP8_KV_DTYPES else "auto",
                "gpuMemoryUtilization": float(r["gpu_memory_utilization"]),
                "maxNumSeqs": int(r.get("max_num_seqs") or SWEEP_MAX_NUM_SEQS),
                "maxNumBatchedTokens": int(r.get("max_num_batched_tokens") or SWEEP_MAX_NUM_BATCHED_TOKENS),
                "engine": {"version": r["vllm_version"]},
            },
            "gpu": {"tensorParallelSize": int(r["tp"]), "pipelineParallelSize": int(r["pp"])},
        }
    )


def _plan(point: CalibrationPoint, spec: LLMDeploymentSpec) -> Prediction:
    config = dict(catalog.lookup(CHECKPOINTS.get(point.row["model"], (point.row["model"],))[0]) or {})
    if point.row["model"] in QUANTIZATION_CONFIGS:
        config["quantization_config"] = QUANTIZATION_CONFIGS[point.row["model"]]
    chosen = plan(SizingRequest(spec, parse(config), H100_POOL), spec.model.name, MEMORY_ONLY)
    return Prediction(chosen.kv_cache_tokens, chosen.memory.kv_cache_gib_per_gpu)


def pinned_plan(point: CalibrationPoint) -> Prediction:
    """The operator's own path: plan() for the spec with the logged run's settings pinned."""
    return _plan(point, pinned_spec(point))


def unpinned_plan(point: CalibrationPoint) -> Prediction:
    """The same without the batch pins: the plan's own max_num_seqs (what the KV cache holds at the default
    workload) moves the activation peak, so its KV figure is not the logged run's."""
    spec = pinned_spec(point)
    serving = spec.serving.model_copy(update={"max_num_seqs": None, "max_num_batched_tokens": None})
    return _plan(point, spec.model_copy(update={"serving": serving}))


METHODS = {
    "rightsizer": rightsizer,
    "plan, pinned": pinned_plan,
    "plan, unpinned": unpinned_plan,
    "rule-of-thumb": rule_of_thumb,
    "azure-formula": azure_formula,
}


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


def held_out() -> dict[str, object]:
    """rightsizer against the held-out starts, row by row (signed: positive predicts more KV than vLLM logged)."""
    pts, missing = held_out_points()
    rows = []
    for point in pts:
        predicted = rightsizer(point)
        logged = float(point.row["kv_cache_tokens"])
        rows.append(
            {
                "label": point.label,
                "loggedTokens": int(logged),
                "predictedTokens": int(predicted.tokens),
                "tokensErrPct": (predicted.tokens - logged) / logged * 100,
                "kvGiBErr": predicted.kv_gib - float(point.row["kv_cache_memory_gib"]),
            }
        )
    errors = [abs(float(r["tokensErrPct"])) for r in rows]
    return {
        "points": len(rows),
        "rows": rows,
        "tokensMeanAbsErrPct": statistics.fmean(errors),
        "tokensMaxAbsErrPct": max(errors),
        "noConfig": sorted(set(missing)),
    }


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
    result = {
        "calibration": str(csv_path()),
        "accuracy": accuracy(),
        "heldOut": held_out(),
        "planLatency": plan_latency(args.runs),
    }
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
    _print_held_out(result["heldOut"])
    lat = result["planLatency"]
    print(
        f"plan() for Llama-3.1-405B over {len(default_pools())} GPU products, {lat['runs']} runs each: cold median "
        f"{lat['coldMedianMs']:.1f} ms (p95 {lat['coldP95Ms']:.1f}), warm median {lat['warmMedianMs']:.1f} ms "
        f"(target < {lat['targetMs']:.0f} ms)"
    )
    return 0


def _print_held_out(held: dict[str, Any]) -> None:
    print(
        f"held out: {HELD_OUT_CSV.name} ({held['points']} starts sized, "
        f"{len(held['noConfig'])} models not in the catalog)"
    )
    print(f"{'start':84s} {'logged tokens':>13s} {'predicted':>10s} {'tokens err':>10s} {'KV GiB err':>10s}")
    for row in held["rows"]:
        print(
            f"{row['label']:84s} {row['loggedTokens']:13,d} {row['predictedTokens']:10,d} "
            f"{row['tokensErrPct']:+9.2f}% {row['kvGiBErr']:+10.2f}"
        )
    print(
        f"held out, rightsizer: tokens mean|err| {held['tokensMeanAbsErrPct']:.2f}%, "
        f"max|err| {held['tokensMaxAbsErrPct']:.2f}%; not sized (no config): {', '.join(held['noConfig'])}"
    )


if __name__ == "__main__":
    sys.exit(main())
