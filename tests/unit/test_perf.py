"""The performance model: physics bounds, monotonicity, queueing shape, calibration, and sizing on latency targets."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench import latency_v0 as latency_model
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.cli.main import main
from rightsizer.errors import SloUnreachableError
from rightsizer.facts.gpus import from_node_labels, lookup
from rightsizer.facts.perf_calibration import TENSORRT_LLM, VLLM, Efficiency
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.checkpoint_quant import checkpoint_quantization
from rightsizer.model.config import ModelFacts, WeightFormat
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.perf import (
    UTILIZATION_CEILING,
    Replica,
    Slo,
    Traffic,
    build_replica,
    largest_batch_within,
    max_concurrency_within,
    max_request_rate,
    predict,
    saturation_rate,
)
from rightsizer.perf.step import runs_on_bf16_kernels
from rightsizer.sizing import MEMORY_ONLY, SizingRequest, plan, search
from rightsizer.sizing.pools import GpuPool, default_pools
from tests.unit.helpers import facts_of

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
FORMATS = {"bf16": WeightFormat.NONE, "fp8": WeightFormat.FP8}


def replica(
    model: str, gpu: str, tp: int = 1, pp: int = 1, weights: str = "bf16", seqs: int = 256, max_len: int = 8192
) -> Replica:
    settings = EngineSettings(tp, pp, seqs, 8192, max_len, 0.9, "bfloat16", "auto", FORMATS[weights])
    facts, product = facts_of(model), lookup(gpu)
    return build_replica(facts, settings, product, replica_memory(facts, settings, product, profile_for("0.19.0")))


# (model, gpu, tp, pp, weights, weight GB per GPU read by one decode step: a lower bound on the step at peak HBM)
SHAPES = [
    (LLAMA_8B, "H100", 1, 1, "bf16", 15.0),
    (LLAMA_8B, "H200", 1, 1, "fp8", 7.5),
    (LLAMA_70B, "H200", 2, 1, "bf16", 69.0),
    (LLAMA_70B, "H100", 4, 1, "bf16", 34.5),
    (LLAMA_70B, "A100-80GB", 4, 1, "bf16", 34.5),
    (LLAMA_70B, "H200", 1, 2, "fp8", 34.0),
]


@pytest.mark.parametrize(("model", "gpu", "tp", "pp", "weights", "gb_per_gpu"), SHAPES)
def test_decode_step_is_never_faster_than_streaming_the_weights_at_peak_bandwidth(
    model: str, gpu: str, tp: int, pp: int, weights: str, gb_per_gpu: float
) -> None:
    r = replica(model, gpu, tp, pp, weights)
    floor = gb_per_gpu * 1e9 / (lookup(gpu).hbm_tb_per_s * 1e12) * pp  # PP stages run one after another
    step = r.decode_step_seconds(1, 512)
    assert floor < step < 3 * floor + 0.02


@pytest.mark.parametrize(("model", "gpu", "tp", "pp", "weights", "gb_per_gpu"), SHAPES)
def test_step_time_grows_with_batch_context_and_prompt(
    model: str, gpu: str, tp: int, pp: int, weights: str, gb_per_gpu: float
) -> None:
    r = replica(model, gpu, tp, pp, weights)
    batches = [r.decode_step_seconds(b, 1000) for b in (1, 8, 64, 256)]
    contexts = [r.decode_step_seconds(32, c) for c in (100, 1000, 8000)]
    prompts = [r.prefill_seconds(p) for p in (128, 1024, 8192, 20000)]
    assert batches == sorted(batches) and batches[0] < batches[-1]
    assert contexts == sorted(contexts) and contexts[0] < contexts[-1]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]


@pytest.mark.parametrize(
    ("model", "gpu", "tp", "weights"), [(LLAMA_8B, "H100", 1, "bf16"), (LLAMA_70B, "H200", 4, "fp8")]
)
def test_long_prefill_is_compute_bound_and_no_faster_than_peak_flops(
    model: str, gpu: str, tp: int, weights: str
) -> None:
    r, product = replica(model, gpu, tp, weights=weights), lookup(gpu)
    peak = (product.fp8_tflops if weights == "fp8" else product.bf16_tflops) or product.bf16_tflops
    flops_per_gpu = 2 * (8.0e9 if model == LLAMA_8B else 70.0e9) * 8192 / tp
    assert r.prefill_seconds(8192) > flops_per_gpu / (peak * 1e12)
    # Doubling a long prompt more than doubles the time: attention is quadratic in the prompt.
    assert r.prefill_seconds(16384) > 2 * r.prefill_seconds(8192)


def test_block_scaled_fp8_weights_prefill_at_the_bf16_rate_and_still_stream_as_fp8() -> None:
    """A 128x128 block-FP8 checkpoint (Qwen's and DeepSeek's FP8 releases) computes at the bf16 peak, as vLLM's own
    kernel benchmarks measure it, while per-tensor FP8 (online `--quantization fp8`) keeps the FP8 peak; both read
    one byte per weight, so a small decode step, bound by streaming the weights, is the same."""
    facts, product = facts_of(LLAMA_70B), lookup("H200")
    block = replace(
        facts,
        quantization=checkpoint_quantization(
            {"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
        ),
    )
    settings = EngineSettings(2, 1, 256, 8192, 8192, 0.9, "bfloat16", "auto", WeightFormat.FP8)

    def built(f: ModelFacts, efficiency: Efficiency = VLLM) -> Replica:
        memory = replica_memory(f, settings, product, profile_for("0.19.0"))
        return build_replica(f, settings, product, memory, efficiency=efficiency)

    per_tensor, blocked = built(facts), built(block)
    assert blocked.prefill_seconds(8192) > 1.6 * per_tensor.prefill_seconds(8192)
    assert blocked.decode_step_seconds(1, 512) == pytest.approx(per_tensor.decode_step_seconds(1, 512), rel=0.05)
    # The term is off in an Efficiency that leaves it out (the model before it): block FP8 at the FP8 peak.
    before = replace(VLLM, block_fp8_on_bf16_peak=False)
    assert built(block, before).prefill_seconds(8192) == pytest.approx(per_tensor.prefill_seconds(8192), rel=0.02)


def test_mxfp4_weights_multiply_at_the_bf16_rate_on_blackwell_and_nvfp4_at_the_fp4_rate() -> None:
    """vLLM's default MXFP4 MoE backends keep the activations in bf16, so gpt-oss on a B200 prefills at the bf16
    rate, not the FP4 one its tensor cores offer to NVFP4 (FP4 activations too)."""
    product = lookup("B200")
    facts = facts_of("openai/gpt-oss-20b")
    settings = EngineSettings(1, 1, 256, 8192, 8192, 0.9, "bfloat16", "auto", WeightFormat.MXFP4)
    memory = replica_memory(facts, settings, product, profile_for("0.19.0"))

    def prefill(efficiency: Efficiency) -> float:
        return build_replica(facts, settings, product, memory, efficiency=efficiency).prefill_seconds(8192)

    assert runs_on_bf16_kernels(facts, settings, VLLM)
    assert prefill(VLLM) > 1.3 * prefill(replace(VLLM, mxfp4_on_bf16_peak=False))
    assert not runs_on_bf16_kernels(facts, replace(settings, weight_format=WeightFormat.NVFP4), VLLM)


def test_a_prompt_scheduled_beside_others_takes_at_least_the_step_that_carries_them() -> None:
    """vLLM's prefill time from first scheduling, at its least: alone, the prompt's own step; beside co-scheduled
    prompts, the step carrying all of them up to a full token budget; a prompt longer than the budget, its own
    chunk steps (where it lands among the others is not known, and a guess too long reads a slow fleet as fast)."""
    r = replica(LLAMA_8B, "H100", 1)
    budget = r.max_num_batched_tokens - 16
    alone = r.scheduled_prefill_seconds(2000, 16, 2100, 0.0)
    assert alone == pytest.approx(r.prefill_seconds(2000, 16, 2100))
    beside = [r.scheduled_prefill_seconds(2000, 16, 2100, x) for x in (1000.0, 4000.0, budget - 2000.0)]
    assert alone < beside[0] < beside[1] < beside[2] == pytest.approx(r.step_seconds(16, 2100, budget))
    assert r.scheduled_prefill_seconds(2000, 16, 2100, 10.0 * budget) == beside[2]  # a full step, no more
    long = budget + 4000
    assert r.scheduled_prefill_seconds(long, 16, 2100, 5000.0) == r.prefill_seconds(long, 16, 2100)


def test_an_arrival_lands_in_a_longer_step_than_the_average_one() -> None:
    """Chunk-carrying steps are longer, so a request arrives during one more often than their share of steps: the
    step it lands in is longer than the mean step and shorter than a chunk step; without chunks they agree."""
    r = replica(LLAMA_8B, "H100", 1)
    busy = predict(r, Traffic(2000, 200, request_rate=4.0))
    assert busy.decode_step_s < busy.itl.mean < busy.arrival_step_s < busy.chunk_step_s
    idle = replace(busy, chunk_step_s=busy.decode_step_s)
    assert idle.arrival_step_s == idle.itl.mean


def test_tensor_parallelism_cuts_decode_latency_and_pipeline_parallelism_does_not() -> None:
    one = replica(LLAMA_70B, "H200", 1, weights="fp8").decode_step_seconds(1, 1000)
    tp4 = replica(LLAMA_70B, "H200", 4, weights="fp8").decode_step_seconds(1, 1000)
    pp4 = replica(LLAMA_70B, "H200", 1, 4, weights="fp8").decode_step_seconds(1, 1000)
    tp8 = replica(LLAMA_70B, "H200", 8, weights="fp8").decode_step_seconds(1, 1000)
    assert tp8 < tp4 < 0.8 * one  # the fixed all-reduce and step costs keep TP from scaling perfectly
    assert pp4 >= one  # the stages run in turn for a single sequence, plus the hand-offs


def test_pipeline_parallelism_adds_throughput_at_large_batches() -> None:
    """Many concurrent prompts: PP skips TP's all-reduces, so a PP4 replica out-serves a TP4 one."""
    traffic = Traffic(1000, 1000, concurrency=2000)
    tp4 = predict(replica(LLAMA_70B, "H200", 4, weights="fp8", seqs=1024), traffic)
    pp4 = predict(replica(LLAMA_70B, "H200", 1, 4, weights="fp8", seqs=1024), traffic)
    assert pp4.output_tokens_per_second > 1.1 * tp4.output_tokens_per_second


def test_moe_decode_reads_only_the_routed_experts() -> None:
    """Mixtral routes each token to 2 of 8 experts: one sequence reads about a third of the weights, 64 all."""
    r = replica(MIXTRAL, "H100", 2)
    assert r.decode_step_seconds(1, 100) < 0.6 * r.decode_step_seconds(64, 100)


# --- load: continuous batching --------------------------------------------------------------------------------------


def test_closed_loop_throughput_grows_then_saturates_while_ttft_explodes() -> None:
    r = replica(LLAMA_70B, "H100", 2, weights="fp8", seqs=64)
    results = [predict(r, Traffic(2000, 200, concurrency=n)) for n in (1, 8, 32, 64, 128, 256)]
    throughput = [p.output_tokens_per_second for p in results]
    assert throughput[:4] == sorted(throughput[:4])
    assert throughput[-1] == pytest.approx(throughput[-2], rel=0.02)  # every slot busy: flat
    assert [p.itl.mean for p in results] == sorted(p.itl.mean for p in results)
    saturated = results[-1]
    queued = 256 - saturated.capacity
    assert saturated.ttft.mean > queued / saturated.request_rate  # Little's law on the waiting queue
    assert results[0].ttft.mean < 1.0 < saturated.ttft.mean


def test_open_loop_saturates_above_the_saturation_rate() -> None:
    r = replica(LLAMA_8B, "H100")
    limit = saturation_rate(r, 1000, 250)
    below = predict(r, Traffic(1000, 250, request_rate=0.8 * limit))
    above = predict(r, Traffic(1000, 250, request_rate=1.2 * limit))
    assert not below.saturated and above.saturated
    assert below.output_tokens_per_second == pytest.approx(0.8 * limit * 250)


@pytest.mark.parametrize(
    "slo",
    [Slo(), Slo(ttft_p95_s=0.6), Slo(itl_p95_s=0.02), Slo(ttft_p95_s=0.5, itl_p95_s=0.03)],
    ids=["none", "ttft", "itl", "both"],
)
def test_max_request_rate_is_the_edge_of_the_slo(slo: Slo) -> None:
    r = replica(LLAMA_8B, "H100")
    rate = max_request_rate(r, 1000, 250, slo)
    ceiling = UTILIZATION_CEILING * saturation_rate(r, 1000, 250)
    assert 0 < rate <= ceiling * (1 + 1e-9)
    assert slo.met_by(predict(r, Traffic(1000, 250, request_rate=rate)))
    if rate < 0.99 * ceiling:  # the SLO, not the utilisation ceiling, binds
        assert not slo.met_by(predict(r, Traffic(1000, 250, request_rate=rate * 1.05)))
    assert (rate < 0.99 * ceiling) == (slo.itl_p95_s is not None)  # 600 ms TTFT holds up to the ceiling


def test_max_concurrency_and_batch_limit_are_the_largest_that_meet_the_target() -> None:
    r = replica(LLAMA_8B, "H100")
    target = 0.012
    limit = largest_batch_within(r, 1000, 250, target)
    assert limit.met and limit.itl_p95_s <= target
    above = r.with_limits(max_num_seqs=limit.max_num_seqs + 1)
    assert predict(above, Traffic(1000, 250, concurrency=limit.max_num_seqs + 1)).itl.p95 > target
    slo = Slo(itl_p95_s=target)
    n = max_concurrency_within(r, 1000, 250, slo)
    assert slo.met_by(predict(r, Traffic(1000, 250, concurrency=n)))
    assert not slo.met_by(predict(r, Traffic(1000, 250, concurrency=n + 1)))


def test_a_target_no_batch_meets_is_reported_as_unmet() -> None:
    limit = largest_batch_within(replica(LLAMA_70B, "H200", 2), 1000, 250, 0.005)
    assert (limit.max_num_seqs, limit.met) == (1, False)


# --- calibration ----------------------------------------------------------------------------------------------------


def test_bench_summary_meets_the_calibration_goals() -> None:
    points = latency_model.load()
    values = latency_model.evaluate(points, VLLM, TENSORRT_LLM)
    lines: list[str] = []
    summary = latency_model.report(points, values, lines.append)
    assert lines[-1] == summary and summary.startswith("summary: itl_median_abs_err=")
    fields = dict(part.split("=") for part in summary.removeprefix("summary: ").split())
    assert float(fields["itl_median_abs_err"].rstrip("%")) <= 15.0
    assert float(fields["ttft_median_abs_err"].rstrip("%")) <= 25.0
    assert int(fields["n"]) >= 30
    for role in ("fit", "validate"):  # held-out rows must not be much worse than the fitted ones
        subset = [p for p in points if p.role == role]
        itl, _ = latency_model.median_abs_error(subset, values, "itl")
        assert itl <= 0.15, role


def test_bench_rows_name_their_source_and_role() -> None:
    points = latency_model.load()
    assert {p.role for p in points} == {"fit", "validate", "throughput", "bound"}
    assert all(p.source for p in points)
    assert all(p.gpu == "H100" for p in points if p.role == "fit")  # fit on H100, validate elsewhere
    assert all(p.gpu != "H100" for p in points if p.role == "validate")


# --- sizing on latency targets --------------------------------------------------------------------------------------


def h200_plan(performance: Any = None, **spec: Any) -> Plan:
    spec.setdefault("model", {"name": LLAMA_70B})
    request = SizingRequest(
        LLMDeploymentSpec.model_validate(spec), facts_of(LLAMA_70B), [GpuPool("h200", lookup("H200"), 8, None)]
    )
    return plan(request, LLAMA_70B, performance)


WORKLOAD = {"inputTokens": 1000, "outputTokens": 250}


def test_tight_itl_target_buys_a_higher_tp_than_memory_needs_and_says_why() -> None:
    memory_only = h200_plan(MEMORY_ONLY, workload=WORKLOAD)
    tight = h200_plan(workload=WORKLOAD, slo={"itlP95Ms": 20})
    assert memory_only.tensor_parallel_size == 2 and memory_only.performance is None
    assert tight.tensor_parallel_size > memory_only.tensor_parallel_size
    assert tight.performance is not None and tight.performance.meets_slo
    assert tight.performance.itl_p95_ms <= 20
    why = next(r for r in tight.reasons if "rather than" in r)
    assert "TP2" in why and "ITL p95" in why and "> 20 ms" in why
    assert any(r.startswith(f"max-num-seqs {tight.max_num_seqs}: the largest batch") for r in tight.reasons)


def test_loose_itl_target_packs_more_concurrency_per_gpu() -> None:
    tight = h200_plan(workload=WORKLOAD, slo={"itlP95Ms": 20})
    loose = h200_plan(workload=WORKLOAD, slo={"itlP95Ms": 200})
    assert loose.tensor_parallel_size == 2
    assert loose.max_num_seqs / loose.gpus_per_replica > 5 * tight.max_num_seqs / tight.gpus_per_replica
    assert loose.performance is not None and loose.performance.meets_slo


def test_request_rate_sets_replicas_from_capacity_within_the_slo() -> None:
    p = h200_plan(
        workload={**WORKLOAD, "requestRate": 6}, slo={"ttftP95Ms": 1000, "itlP95Ms": 60}, replicas={"max": 20}
    )
    assert p.performance is not None and p.performance.meets_slo
    assert p.replicas == math.ceil(6 / p.performance.max_request_rate)
    assert any("requestRate 6 req/s" in r for r in p.reasons)


def test_a_target_missed_at_the_declared_load_plans_the_closest_and_warns() -> None:
    # One request alone meets 20 ms on 8 × H200; 512 concurrent requests on the one replica allowed do not.
    p = h200_plan(workload={**WORKLOAD, "concurrency": 512}, slo={"itlP95Ms": 20}, replicas={"min": 1, "max": 1})
    assert p.performance is not None and not p.performance.meets_slo
    warning = next(w for w in p.warnings if w.startswith("no plan meets spec.slo"))
    assert "ITL p95" in warning and "> 20 ms" in warning


def test_a_target_no_gpu_meets_even_for_one_request_is_refused_naming_the_lowest_reachable() -> None:
    with pytest.raises(SloUnreachableError) as refused:
        h200_plan(workload=WORKLOAD, slo={"itlP95Ms": 3})
    err = refused.value
    assert err.field == "spec.slo.itlP95Ms"
    assert "cannot be met even by one request alone" in err.problem and "TP8" in err.problem
    lowest = float(err.problem.split("reaches is ")[1].split(" ms")[0])
    assert 3 < lowest < 20  # the decode floor of 70B on 8 × H200, at the slow edge
    assert f"raise spec.slo.itlP95Ms to {math.ceil(lowest)}" in err.fix and "\n" not in err.one_line()


def test_an_unreachable_ttft_names_the_prompt_length() -> None:
    """An 8B model, 32k-token prompts, a 50 ms TTFT target: no GPU prefills 32k tokens that fast (issue 14)."""
    request = SizingRequest(
        LLMDeploymentSpec.model_validate(
            {
                "model": {"name": LLAMA_8B},
                "serving": {"maxModelLen": 40000},
                "workload": {"inputTokens": 32000, "outputTokens": 200, "concurrency": 4},
                "slo": {"ttftP95Ms": 50},
            }
        ),
        facts_of(LLAMA_8B),
        default_pools(),
    )
    with pytest.raises(SloUnreachableError) as refused:
        plan(request, LLAMA_8B)
    assert refused.value.field == "spec.slo.ttftP95Ms" and "32,000 tokens" in refused.value.fix


def test_gpus_without_figures_are_planned_from_memory_and_uncalibrated_ones_warn() -> None:
    unknown = GpuPool("x", from_node_labels("NVIDIA-X999", 81920), 8, None)
    spec = LLMDeploymentSpec.model_validate({"model": {"name": LLAMA_8B}})
    result = search(SizingRequest(spec, facts_of(LLAMA_8B), [unknown]))
    assert result.candidates and all(c.performance is None for c in result.candidates)
    l40s = plan(SizingRequest(spec, facts_of(LLAMA_8B), [GpuPool("l40s", lookup("L40S"), 8, None)]), LLAMA_8B)
    assert l40s.performance is not None and not l40s.performance.calibrated
    assert any("extrapolated" in w for w in l40s.warnings)


def test_plan_prints_predicted_latency_and_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "llmd.yaml"
    manifest.write_text(
        "kind: LLMDeployment\nmetadata: {name: demo}\nspec:\n"
        f"  model: {{name: {LLAMA_8B}}}\n  slo: {{ttftP95Ms: 500, itlP95Ms: 30}}\n"
        "  workload: {requestRate: 4}\n"
    )
    assert main(["plan", "-f", str(manifest), "--gpu", "H100", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "Predicted" in out and "TTFT p50/p95" in out and "ITL p50/p95" in out
    assert "req/s or" in out and "per replica within SLO" in out
