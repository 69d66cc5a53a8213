"""vLLM's scheduler limits in a plan (sizing/batch.py): lowered until one request fits before refusing (issue 12
item 3), pinned by spec.serving.maxNumSeqs / maxNumBatchedTokens and checked as vLLM checks them (item 4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.calibration_set import points
from bench.sizing_accuracy import pinned_plan
from rightsizer.api.v1alpha1.llmdeployment import Serving
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.errors import SizingError
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import GIB, SchedulerTier, profile_for
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.model.quantization import resolve_weights
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.batch import BatchLimits, batch_rules, lower_to_fit
from rightsizer.sizing.pools import GpuPool
from tests.unit.helpers import facts_of, spec_of

H100_TIER = SchedulerTier(70.0, 8192, 1024)
GPT_OSS = "openai/gpt-oss-120b"


def h100(per_node: int = 8) -> GpuPool:
    return GpuPool("h100", lookup("H100"), per_node, None, None)


def size(model: str, **fields: Any) -> Plan:
    return plan(SizingRequest(spec_of(model, **fields), facts_of(model), [h100()]), model)


def refused(model: str, **fields: Any) -> SizingError:
    with pytest.raises(SizingError) as err:
        size(model, **fields)
    assert "\n" not in str(err.value)
    return err.value


# --- the lowering, on a made-up memory model -----------------------------------------------------------------------


def test_max_num_seqs_comes_down_first() -> None:
    rules = batch_rules(Serving(), 8192, chunked_prefill=True)
    fitted = lower_to_fit(BatchLimits(1024, 8192), rules, H100_TIER, lambda b: b.max_num_seqs <= 300)
    assert fitted == BatchLimits(300, 8192)


def test_batched_tokens_come_down_only_when_one_sequence_does_not_fit() -> None:
    rules = batch_rules(Serving(), 8192, chunked_prefill=True)
    fits = lambda b: b.max_num_batched_tokens + 8 * b.max_num_seqs <= 5000  # noqa: E731
    fitted = lower_to_fit(BatchLimits(1024, 8192), rules, H100_TIER, fits)
    assert fitted is not None
    assert fitted.max_num_batched_tokens == 4864  # the largest budget one sequence fits in, in steps of 256
    assert fitted.max_num_seqs == (5000 - 4864) // 8  # then max_num_seqs rises into the room left


def test_lowering_stops_at_vllms_smallest_default_budget() -> None:
    rules = batch_rules(Serving(), 8192, chunked_prefill=True)
    assert lower_to_fit(BatchLimits(1024, 8192), rules, H100_TIER, lambda b: b.max_num_batched_tokens < 2048) is None


def test_pins_are_never_lowered() -> None:
    rules = batch_rules(Serving(max_num_seqs=512), 8192, chunked_prefill=True)
    start = rules.defaults(H100_TIER)
    assert lower_to_fit(start, rules, H100_TIER, lambda b: b.max_num_seqs <= 300) is None
    fitted = lower_to_fit(start, rules, H100_TIER, lambda b: b.max_num_batched_tokens <= 4096)
    assert fitted == BatchLimits(512, 4096)  # the unpinned budget gives way instead


# --- defaults and pins as vLLM checks them ------------------------------------------------------------------------


def test_defaults_follow_vllms_own_steps() -> None:
    assert batch_rules(Serving(), 8192, True).defaults(H100_TIER) == BatchLimits(1024, 8192)
    # chunked prefill off: vLLM raises the budget to max_model_len (arg_utils.py)
    assert batch_rules(Serving(), 32768, False).defaults(H100_TIER) == BatchLimits(1024, 32768)
    # a pinned budget below the default max_num_seqs caps it, as vLLM caps a defaulted max_num_seqs
    assert batch_rules(Serving(max_num_batched_tokens=512), 8192, True).defaults(H100_TIER) == BatchLimits(512, 512)
    # a pinned max_num_seqs above the default budget: rightsizer raises the budget it passes, which vLLM requires
    assert batch_rules(Serving(max_num_seqs=9000), 8192, True).defaults(H100_TIER) == BatchLimits(9000, 9000)


def test_pins_vllm_refuses_are_refused_with_its_reason() -> None:
    with pytest.raises(SizingError) as err:
        batch_rules(Serving(max_num_seqs=256, max_num_batched_tokens=128), 8192, True)
    assert err.value.field == "spec.serving.maxNumBatchedTokens"
    assert "must be greater than or equal to max_num_seqs (256)" in err.value.problem
    with pytest.raises(SizingError) as err:
        batch_rules(Serving(max_num_batched_tokens=4096), 32768, chunked_prefill=False)
    assert "is smaller than max_model_len (32768)" in err.value.problem
    batch_rules(Serving(max_num_batched_tokens=4096), 32768, chunked_prefill=True)  # chunked prefill allows it


def test_disabled_chunked_prefill_in_extra_args_reaches_the_pin_check() -> None:
    error = refused(
        "meta-llama/Llama-3.1-8B-Instruct",
        serving={
            "maxModelLen": 16384,
            "maxNumBatchedTokens": 8192,
            "engine": {"extraArgs": ["--no-enable-chunked-prefill"]},
        },
    )
    assert error.field == "spec.serving.maxNumBatchedTokens"
    assert "chunked prefill disabled" in error.problem


def test_disabled_chunked_prefill_raises_the_budget_to_max_model_len() -> None:
    p = size(
        "meta-llama/Llama-3.1-8B-Instruct",
        serving={"maxModelLen": 16384, "engine": {"extraArgs": ["--no-enable-chunked-prefill"]}},
    )
    assert p.max_num_batched_tokens == 16384


# --- the plans ----------------------------------------------------------------------------------------------------


def _gpt_oss_on_one_h100(**serving: Any) -> Plan:
    return size(GPT_OSS, serving={"engine": {"version": "0.10.2"}, **serving}, gpu={"tensorParallelSize": 1})


def test_gpt_oss_120b_on_one_h100_plans_with_a_lowered_max_num_seqs() -> None:
    """Issue 12: refused before ("no memory left for the KV cache, -0.80 GiB"): vLLM 0.10's sampler peak at the
    default 1024 sequences x 201,088 vocabulary entries alone is several GiB."""
    p = _gpt_oss_on_one_h100()
    assert (p.gpus_per_replica, p.tensor_parallel_size) == (1, 1)
    assert p.max_num_seqs < 1024
    assert p.max_num_batched_tokens == 8192
    lowered = [r for r in p.reasons if "lowered max-num-seqs to" in r]
    assert len(lowered) == 1 and "-0.80 GiB" in lowered[0]
    m = p.memory
    assert m.kv_cache_gib_per_gpu > 0
    terms = m.weights_gib_per_gpu + m.activation_gib_per_gpu + m.non_torch_gib_per_gpu + m.kv_cache_gib_per_gpu
    assert terms == pytest.approx(m.requested_gib_per_gpu, abs=0.02)  # they add up within the budget


def test_the_lowered_gpt_oss_plan_would_start() -> None:
    """Recomputed from the plan's own arguments, one max_model_len request fits: vLLM would start."""
    p = _gpt_oss_on_one_h100()
    facts = facts_of(GPT_OSS)
    weights = resolve_weights(spec_of(GPT_OSS).model, facts)
    settings = EngineSettings(
        tensor_parallel_size=1,
        pipeline_parallel_size=1,
        max_num_seqs=p.max_num_seqs,
        max_num_batched_tokens=p.max_num_batched_tokens,
        max_model_len=p.max_model_len,
        gpu_memory_utilization=p.gpu_memory_utilization,
        dtype=weights.dtype,
        kv_cache_dtype="auto",
        weight_format=weights.format,
        group_size=weights.group_size,
        quantize_attention=weights.quantize_attention,
    )
    memory = replica_memory(facts, settings, lookup("H100"), profile_for("0.10.2"))
    assert memory.fits
    at_defaults = replica_memory(facts, replace(settings, max_num_seqs=1024), lookup("H100"), profile_for("0.10.2"))
    assert not at_defaults.fits
    assert at_defaults.binding.kv_cache / GIB == pytest.approx(-0.80, abs=0.01)


def test_a_pinned_max_num_seqs_is_honoured_exactly() -> None:
    p = size(
        "meta-llama/Llama-3.1-8B-Instruct",
        serving={"maxNumSeqs": 64, "maxNumBatchedTokens": 4096},
        workload={"inputTokens": 100, "outputTokens": 20},
        slo={"itlP95Ms": 8},  # a tight ITL target would otherwise cap the batch
    )
    assert (p.max_num_seqs, p.max_num_batched_tokens) == (64, 4096)
    args = p.vllm_args
    assert args[args.index("--max-num-seqs") + 1] == "64"
    assert args[args.index("--max-num-batched-tokens") + 1] == "4096"
    assert any("from spec.serving.maxNumSeqs" in r for r in p.reasons)
    assert any("from spec.serving.maxNumBatchedTokens" in r for r in p.reasons)


def test_a_pin_that_leaves_no_room_names_the_pin() -> None:
    """gpt-oss-120b fits one H100 at 0.10.2 only below vLLM's default 1024 sequences: pinning 1024 is refused,
    naming the pin rather than the GPUs."""
    error = refused(
        GPT_OSS, serving={"engine": {"version": "0.10.2"}, "maxNumSeqs": 1024}, gpu={"tensorParallelSize": 1}
    )
    assert error.field == "spec.serving.maxNumSeqs"
    assert "lower spec.serving.maxNumSeqs" in error.fix


def test_refused_only_when_one_sequence_at_max_model_len_cannot_fit() -> None:
    error = refused("meta-llama/Llama-3.1-405B-Instruct", gpu={"tensorParallelSize": 1})
    assert error.field == "spec.gpu.products"
    assert "even at max-num-seqs 1, max-num-batched-tokens 2048" in error.problem


# --- pinned to a logged run, the plan's KV cache is the log's --------------------------------------------------------


def test_with_the_logged_limits_pinned_every_calibration_row_is_within_half_a_percent(calibration_csv: Path) -> None:
    """Issue 12: the plan's KV figure is comparable with a vLLM log when max_num_seqs and max_num_batched_tokens
    are what that run used (bench/sizing_accuracy.py reports the same comparison, 'plan, pinned')."""
    rows = points(calibration_csv)
    errors = [
        (p.label, abs(pinned_plan(p).tokens - int(p.row["kv_cache_tokens"])) / int(p.row["kv_cache_tokens"]) * 100)
        for p in rows
    ]
    assert len(errors) == len(rows) >= 28
    assert [(label, e) for label, e in errors if e >= 0.5] == []
