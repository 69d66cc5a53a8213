"""Block-quantized FP8 widths per TP rank, and expert parallelism (--enable-expert-parallel) as a layout the search
considers: pinned on the published FP8 checkpoints (tests/unit/fp8_checkpoints.py cites their configs) and on the
GPU counts their publishers run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.errors import SizingError
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import ModelFacts, WeightFormat, parse
from rightsizer.model.memory import EngineSettings, activation_bytes, expert_parallel_workspace_growth, weight_bytes
from rightsizer.model.parallelism import tensor_parallel_problems
from rightsizer.model.params import experts_per_rank, inventory, per_rank_count
from rightsizer.perf.step import stage_cost
from rightsizer.sizing import SizingRequest, plan, search
from rightsizer.sizing.extra_args import read_extra_args
from rightsizer.sizing.pools import GpuPool
from rightsizer.sizing.request import MEMORY_ONLY
from rightsizer.sizing.vllm_args import server_args
from tests.unit.fp8_checkpoints import QWEN3_FP8, fp8_facts
from tests.unit.helpers import facts_of

QWEN3_235B_FP8 = "Qwen/Qwen3-235B-A22B-FP8"
QWEN3_CODER_FP8 = "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"
EP_FLAG = "--enable-expert-parallel"


def pool(product: str, per_node: int = 8) -> GpuPool:
    gpu = lookup(product)
    return GpuPool(gpu.short_name.lower(), gpu, per_node, None, None)


def size(name: str, facts: ModelFacts, pools: list[GpuPool], **spec: Any) -> Plan:
    validated = LLMDeploymentSpec.model_validate({"model": {"name": name}, **spec})
    return plan(SizingRequest(validated, facts, pools), name)


def settings(tp: int, ep: bool, fmt: WeightFormat = WeightFormat.NONE) -> EngineSettings:
    return EngineSettings(tp, 1, 256, 8192, 8192, 0.9, "bfloat16", "auto", fmt, expert_parallel=ep)


# --- the FP8 block rule (vLLM 0.19.0 fp8.py:626-649, fp8_utils.py:1425-1474) ----------------------------------------


@pytest.mark.parametrize(
    ("name", "width"),
    [(QWEN3_235B_FP8, 192), (QWEN3_CODER_FP8, 320)],  # moe_intermediate_size 1536 / 8, 2560 / 8
)
def test_tp8_is_refused_for_an_expert_slice_finer_than_the_fp8_block(name: str, width: int) -> None:
    problems = tensor_parallel_problems(fp8_facts(name), 8)
    assert problems == [f"the expert width per GPU ({width}) is not a multiple of the FP8 weight block 128"]


@pytest.mark.parametrize("name", [QWEN3_235B_FP8, QWEN3_CODER_FP8])
def test_expert_parallelism_lifts_the_block_rule_and_smaller_tp_never_hit_it(name: str) -> None:
    facts = fp8_facts(name)
    assert tensor_parallel_problems(facts, 8, expert_parallel=True) == []
    assert [tp for tp in (1, 2, 4) if tensor_parallel_problems(facts, tp)] == []


def test_the_unquantized_release_keeps_tp8() -> None:
    """The rule belongs to the checkpoint's fp8 block, not to the architecture: the bf16 release runs at TP8."""
    assert tensor_parallel_problems(facts_of("Qwen/Qwen3-235B-A22B"), 8) == []


def test_shared_experts_stay_tensor_parallel_under_expert_parallelism() -> None:
    """Qwen3-Next's shared expert (width 512) is a TP-sharded MLP even with EP: its down projection's input is 64 per
    GPU at TP8, finer than the block (sgl-project/sglang#10852: Qwen3-Next-80B-A3B-Instruct-FP8 at TP8 fails with
    "The output_size of gate's and up's weight = 64 is not divisible by weight quantization block_n = 128")."""
    config = {**(catalog.lookup("Qwen/Qwen3-Next-80B-A3B-Instruct") or {}), "quantization_config": QWEN3_FP8}
    facts = parse(config)
    assert tensor_parallel_problems(facts, 8) != []
    assert tensor_parallel_problems(facts, 8, expert_parallel=True) == [
        "the shared-expert down projection's input per GPU (64) is not a multiple of the FP8 weight block 128"
    ]
    assert tensor_parallel_problems(facts, 4) == []


def test_expert_parallelism_needs_a_moe_model_and_more_than_one_gpu() -> None:
    dense = facts_of("meta-llama/Llama-3.1-8B-Instruct")
    assert tensor_parallel_problems(dense, 2, expert_parallel=True) == [
        "expert parallelism needs a mixture-of-experts model"
    ]
    moe = facts_of("Qwen/Qwen3-30B-A3B")
    assert "expert parallelism needs more than one GPU (TP > 1)" in tensor_parallel_problems(
        moe, 1, expert_parallel=True
    )


# --- where the experts go -------------------------------------------------------------------------------------------


def _vllm_local_experts(num_experts: int, ep: int, rank: int) -> int:
    """determine_expert_map's count (vllm/model_executor/layers/fused_moe/layer.py@v0.19.0:106-109)."""
    base, remainder = divmod(num_experts, ep)
    return base + 1 if rank < remainder else base


@pytest.mark.parametrize(("experts", "ep"), [(128, 8), (160, 8), (60, 8), (60, 4), (8, 8), (257, 16)])
def test_the_busiest_rank_holds_what_vllm_gives_it(experts: int, ep: int) -> None:
    counts = [_vllm_local_experts(experts, ep, rank) for rank in range(ep)]
    assert sum(counts) == experts
    assert experts_per_rank(experts, ep) == max(counts)


def test_expert_bytes_per_gpu_match_tp_when_the_experts_divide() -> None:
    """128 experts over 8 GPUs: 16 whole experts hold exactly the bytes of a 1/8 slice of all 128."""
    facts = facts_of("Qwen/Qwen3-235B-A22B")
    layers = range(facts.num_layers)
    assert weight_bytes(facts, settings(8, True), 0, layers) == weight_bytes(facts, settings(8, False), 0, layers)


def test_the_busiest_rank_carries_the_remainder_when_the_experts_do_not_divide() -> None:
    """60 experts over 8 GPUs: the first four ranks hold 8 experts, the others 7; the plan sizes the 8."""
    config = {**(catalog.lookup("Qwen/Qwen3-30B-A3B") or {}), "num_experts": 60}
    facts = parse(config)
    experts = next(g for g in inventory(facts) if g.is_expert)
    assert per_rank_count(experts, facts, 8, expert_parallel=True) == experts.count / 60 * 8
    assert per_rank_count(experts, facts, 8) == experts.count / 8
    layers = range(facts.num_layers)
    extra = weight_bytes(facts, settings(8, True), 0, layers) - weight_bytes(facts, settings(8, False), 0, layers)
    per_layer_expert_bytes = experts.count * 2
    assert extra == pytest.approx(facts.num_layers * per_layer_expert_bytes * (8 / 60 - 1 / 8))


def test_expert_biases_move_with_their_experts() -> None:
    """gpt-oss experts carry biases (E × 2I and E × hidden): under EP a rank holds those of its own experts only."""
    facts = facts_of("openai/gpt-oss-120b")
    biases = [g for g in inventory(facts) if g.module.startswith("mlp.experts.") and g.layer == 0]
    assert {g.module for g in biases} == {"mlp.experts.gate_up_bias", "mlp.experts.down_bias"}
    for g in biases:
        assert per_rank_count(g, facts, 4, expert_parallel=True) == g.count / 4


def test_the_moe_workspace_grows_only_where_a_full_expert_is_wider_than_the_hidden_size() -> None:
    """vLLM's fused-MoE workspaces are (M, top_k, max(I_rank, hidden)) and (M, top_k, max(2·I_rank, hidden))."""
    profile = profile_for("0.19.0")
    qwen = facts_of("Qwen/Qwen3-235B-A22B")  # 2 × 1536 < 4096: hidden-bound either way
    layers = range(qwen.num_layers)
    assert expert_parallel_workspace_growth(qwen, settings(8, True), layers) == 0
    assert activation_bytes(qwen, settings(8, True), profile, layers, True) == activation_bytes(
        qwen, settings(8, False), profile, layers, True
    )
    oss = facts_of("openai/gpt-oss-120b")  # I = hidden = 2880: 2I exceeds the hidden size once unsplit
    growth = expert_parallel_workspace_growth(oss, settings(4, True, WeightFormat.MXFP4), range(oss.num_layers))
    assert growth == 4 * (2 * 2880 - 2880) * 2  # top-4, (2I − hidden) on the second workspace, bf16


def test_the_step_model_reads_the_same_expert_bytes_and_keeps_the_all_reduce() -> None:
    """With one data-parallel rank vLLM still all-reduces the MoE output over TP (all-to-all kernels need DP > 1)."""
    facts = facts_of("Qwen/Qwen3-235B-A22B")
    layers = range(facts.num_layers)
    tp, ep = stage_cost(facts, settings(8, False), 0, layers), stage_cost(facts, settings(8, True), 0, layers)
    assert ep.expert_weight_bytes == tp.expert_weight_bytes
    assert ep.layer_flops_per_token == tp.layer_flops_per_token
    assert ep.allreduces == tp.allreduces


# --- the search and the plan ----------------------------------------------------------------------------------------


def test_l40s_plans_tp8_with_expert_parallelism_instead_of_a_layout_vllm_refuses() -> None:
    """The issue's case: TP8 on L40S was the cheapest plan and vLLM failed at start-up (vLLM issue #17569)."""
    p = size(QWEN3_235B_FP8, fp8_facts(QWEN3_235B_FP8), [pool("L40S")])
    assert (p.tensor_parallel_size, p.expert_parallel) == (8, True)
    assert p.vllm_args.count(EP_FLAG) == 1
    assert any("expert parallelism" in r and "192" in r for r in p.reasons)


def test_qwen3_235b_fp8_on_h100_runs_tp4_as_published() -> None:
    """GPUStack's H100 recipe for Qwen3-235B-A22B-Instruct-2507-FP8 is `vllm serve ... -tp 4`, two replicas on one
    8 × H100 node (docs.gpustack.ai/latest/performance-lab/qwen3-235b-a22b/h100)."""
    p = size(QWEN3_235B_FP8, fp8_facts(QWEN3_235B_FP8), [pool("H100")])
    assert (p.gpus_per_replica, p.tensor_parallel_size, p.expert_parallel) == (4, 4, False)
    assert EP_FLAG not in p.vllm_args


def test_a_tp8_pin_gets_expert_parallelism() -> None:
    """Eight H100s for one replica, as vLLM issue #17569 tried: planned with --enable-expert-parallel."""
    p = size(QWEN3_235B_FP8, fp8_facts(QWEN3_235B_FP8), [pool("H100")], gpu={"tensorParallelSize": 8})
    assert (p.tensor_parallel_size, p.expert_parallel) == (8, True)
    assert EP_FLAG in p.vllm_args


def test_qwen3_coder_fp8_on_eight_h200_as_the_vllm_recipe_runs_it() -> None:
    """vLLM's Qwen3-Coder recipe serves the FP8 checkpoint on 8 × H200 with --enable-expert-parallel and
    --max-model-len 131072 (docs.vllm.ai/projects/recipes/en/latest/Qwen/Qwen3-Coder-480B-A35B.html; it uses
    data parallelism, which rightsizer expresses as replicas, so the eight GPUs are one TP8 replica here)."""
    facts = fp8_facts(QWEN3_CODER_FP8)
    p = size(QWEN3_CODER_FP8, facts, [pool("H200")], gpu={"tensorParallelSize": 8}, serving={"maxModelLen": 131072})
    assert (p.gpus_per_replica, p.expert_parallel) == (8, True)
    assert EP_FLAG in p.vllm_args


def test_qwen3_coder_fp8_on_h100_needs_all_eight_with_expert_parallelism() -> None:
    p = size(QWEN3_CODER_FP8, fp8_facts(QWEN3_CODER_FP8), [pool("H100")])
    assert (p.tensor_parallel_size, p.expert_parallel) == (8, True)


@pytest.mark.parametrize("product", ["H100", "H200", "L40S"])
def test_no_expert_parallel_twin_where_plain_tp_is_accepted(product: str) -> None:
    """Plain TP is preferred: where vLLM accepts it, EP (one DP rank) holds the same expert bytes and keeps the
    all-reduce, so only the layouts vLLM refuses without it get an expert-parallel twin."""
    facts = fp8_facts(QWEN3_235B_FP8)
    request = SizingRequest(
        LLMDeploymentSpec.model_validate({"model": {"name": QWEN3_235B_FP8}}), facts, [pool(product)]
    )
    result = search(request)
    twins = {c.shape.tp for c in result.candidates if c.shape.expert_parallel}
    twins |= {r.shape.tp for r in result.rejections if r.shape.expert_parallel}
    assert twins == {8}
    bf16 = replace(request, facts=facts_of("Qwen/Qwen3-235B-A22B"))
    result = search(bf16)
    assert not any(c.shape.expert_parallel for c in result.candidates)


def test_server_args_emit_the_flag_only_for_expert_parallel_plans() -> None:
    common: dict[str, Any] = dict(
        model="m",
        revision=None,
        served_name="m",
        tensor_parallel_size=8,
        pipeline_parallel_size=1,
        max_model_len=4096,
        max_num_seqs=8,
        max_num_batched_tokens=4096,
        gpu_memory_utilization=0.9,
        kv_cache_dtype="auto",
        quantization_flag=None,
        dtype_flag=None,
    )
    assert EP_FLAG not in server_args(**common)
    assert server_args(**common, expert_parallel=True).count(EP_FLAG) == 1


@pytest.mark.parametrize("spelling", [EP_FLAG, "-ep", "--no-enable-expert-parallel"])
def test_extra_args_refuse_expert_parallelism_now_that_rightsizer_sets_it(spelling: str) -> None:
    with pytest.raises(SizingError) as refused:
        read_extra_args("0.19.0", [spelling])
    assert refused.value.field == "spec.serving.engine.extraArgs[0]"
    assert "expert parallelism" in refused.value.fix


def test_plain_tp_wins_at_equal_cost() -> None:
    """150 concurrent requests of 2,500 tokens on H100: two TP4 replicas and one TP8 replica with expert parallelism
    both cost eight GPUs; the plan keeps plain TP (fewer GPUs per replica breaks the tie, and no surprise flag)."""
    spec = {"workload": {"concurrency": 150, "inputTokens": 2000, "outputTokens": 500}, "replicas": {"max": 8}}
    validated = LLMDeploymentSpec.model_validate({"model": {"name": QWEN3_235B_FP8}, **spec})
    request = SizingRequest(validated, fp8_facts(QWEN3_235B_FP8), [pool("H100")])
    candidates = search(request, MEMORY_ONLY).candidates
    costs = {(c.shape.tp, c.shape.expert_parallel): c.gpu_hours_per_hour() for c in candidates}
    assert costs == {(4, False): 8, (8, True): 8}
    assert (candidates[0].shape.tp, candidates[0].shape.expert_parallel) == (4, False)


# --- the pin: spec.serving.expertParallel -----------------------------------------------------------------------------


def test_the_pin_true_gives_every_plan_expert_parallelism() -> None:
    """TP4 on H100 is accepted without it (the published recipe), but the pin is honoured: EP = 4, 32 experts a GPU."""
    facts = fp8_facts(QWEN3_235B_FP8)
    p = size(QWEN3_235B_FP8, facts, [pool("H100")], serving={"expertParallel": True})
    assert (p.tensor_parallel_size, p.expert_parallel) == (4, True)
    assert p.vllm_args.count(EP_FLAG) == 1
    assert any("pinned by spec.serving.expertParallel" in r and "32 of the 128 experts" in r for r in p.reasons)


def test_the_pin_false_keeps_plain_tp_where_vllm_accepts_it() -> None:
    p = size(QWEN3_235B_FP8, fp8_facts(QWEN3_235B_FP8), [pool("H100")], serving={"expertParallel": False})
    assert (p.tensor_parallel_size, p.expert_parallel) == (4, False)
    assert EP_FLAG not in p.vllm_args


def test_the_pin_false_refuses_a_tp_degree_only_expert_parallelism_makes_vllm_accept() -> None:
    """TP8 splits each 1536-wide FP8 expert into 192 columns, which vLLM refuses; with the pin at false nothing else
    is allowed, so the refusal names the pin rather than the TP pin."""
    with pytest.raises(SizingError) as refused:
        size(
            QWEN3_235B_FP8,
            fp8_facts(QWEN3_235B_FP8),
            [pool("H100")],
            gpu={"tensorParallelSize": 8},
            serving={"expertParallel": False},
        )
    assert refused.value.field == "spec.serving.expertParallel"
    assert "192" in refused.value.problem and "\n" not in str(refused.value)


def test_the_pin_false_on_l40s_leaves_no_plan_and_says_which_pin() -> None:
    """Eight L40S hold the FP8 235B only at TP8, which vLLM accepts only with expert parallelism."""
    with pytest.raises(SizingError) as refused:
        size(QWEN3_235B_FP8, fp8_facts(QWEN3_235B_FP8), [pool("L40S")], serving={"expertParallel": False})
    assert refused.value.field == "spec.serving.expertParallel"


def test_the_pin_true_on_a_dense_model_is_refused_naming_the_field() -> None:
    name = "meta-llama/Llama-3.1-8B-Instruct"
    with pytest.raises(SizingError) as refused:
        size(name, facts_of(name), [pool("H100")], serving={"expertParallel": True})
    assert refused.value.field == "spec.serving.expertParallel"
    assert "dense" in refused.value.problem
    # false on a dense model asks for what vLLM does anyway: planned as without the pin
    assert not size(name, facts_of(name), [pool("H100")], serving={"expertParallel": False}).expert_parallel


def test_the_pin_true_plans_an_unquantized_moe_model_expert_parallel() -> None:
    """Mixtral 8x7B (bf16) is accepted at every TP without expert parallelism, so the search never tries it; the
    pin makes the plan expert-parallel (whole experts on each GPU) and passes the flag."""
    name = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    unpinned = size(name, facts_of(name), [pool("H100")])
    pinned = size(name, facts_of(name), [pool("H100")], serving={"expertParallel": True})
    assert not unpinned.expert_parallel and EP_FLAG not in unpinned.vllm_args
    assert pinned.expert_parallel and pinned.vllm_args.count(EP_FLAG) == 1
