"""The plan search: the cases the product promises, pins, and errors that name the field to fix."""

from __future__ import annotations

from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.errors import RightsizerError, SizingError
from rightsizer.facts.gpus import lookup
from rightsizer.sizing import SizingRequest, plan, search
from rightsizer.sizing.pools import GpuPool
from tests.unit.helpers import facts_of, spec_of


def pool(
    product: str, name: str | None = None, per_node: int = 8, max_nodes: int | None = None, price: float | None = None
) -> GpuPool:
    gpu = lookup(product)
    return GpuPool(name or gpu.short_name.lower(), gpu, per_node, max_nodes, price)


def size(name: str, pools: list[GpuPool], **spec: Any) -> Plan:
    spec.setdefault("model", {"name": name})
    request = SizingRequest(LLMDeploymentSpec.model_validate(spec), facts_of(name), pools)
    return plan(request, name)


def test_llama_70b_fp8_fits_one_h200() -> None:
    p = size(
        "meta-llama/Llama-3.1-70B-Instruct",
        [pool("H200")],
        model={"name": "meta-llama/Llama-3.1-70B-Instruct", "quantization": "fp8"},
    )
    assert (p.gpus_per_replica, p.tensor_parallel_size, p.pipeline_parallel_size) == (1, 1, 1)
    assert "--quantization" in p.vllm_args
    assert p.vllm_args[p.vllm_args.index("--quantization") + 1] == "fp8"


def test_llama_70b_bf16_needs_tp2_on_h200() -> None:
    p = size("meta-llama/Llama-3.1-70B-Instruct", [pool("H200")])
    assert (p.tensor_parallel_size, p.pipeline_parallel_size) == (2, 1)


def test_llama_405b_bf16_spans_two_h100_nodes() -> None:
    p = size("meta-llama/Llama-3.1-405B-Instruct", [pool("H100")])
    assert (p.tensor_parallel_size, p.pipeline_parallel_size, p.nodes_per_replica) == (8, 2, 2)
    assert any("spans 2 nodes" in r for r in p.reasons)


@pytest.mark.parametrize("product", ["H100", "H200", "L40S", "A100-80GB", "B200"])
def test_phi3_medium_never_gets_tp4_or_tp8(product: str) -> None:
    result = search(
        SizingRequest(
            spec_of("microsoft/Phi-3-medium-128k-instruct"),
            facts_of("microsoft/Phi-3-medium-128k-instruct"),
            [pool(product)],
        )
    )
    assert result.candidates
    assert all(c.shape.tp not in (4, 8) for c in result.candidates)


def test_cheapest_pool_wins_when_prices_are_known() -> None:
    pools = [pool("H200", price=4.0), pool("H100", price=2.0)]
    p = size("meta-llama/Llama-3.1-8B-Instruct", pools)
    assert p.gpu_product == "NVIDIA-H100-80GB-HBM3"
    assert any("cheapest" in r for r in p.reasons)


def test_without_prices_fewest_gpus_then_preference_order() -> None:
    pools = [pool("H100"), pool("H200")]
    p = size("meta-llama/Llama-3.1-8B-Instruct", pools, gpu={"products": ["H200", "H100"]})
    assert p.gpu_product == "NVIDIA-H200"
    p = size("meta-llama/Llama-3.1-70B-Instruct", pools, gpu={"products": ["H100", "H200"]})
    assert p.gpu_product == "NVIDIA-H200" and p.gpus_per_replica == 2  # H100 needs 4 GPUs for bf16 70B


def test_workload_concurrency_sets_max_num_seqs_and_replicas() -> None:
    p = size(
        "meta-llama/Llama-3.1-70B-Instruct",
        [pool("H100")],
        workload={"inputTokens": 4000, "outputTokens": 1000, "concurrency": 400},
        replicas={"min": 1, "max": 8},
    )
    per_replica = p.workload_concurrency
    assert p.max_num_seqs <= 1024
    assert p.replicas == -(-400 // int(per_replica)) or p.replicas * per_replica >= 400


def test_max_num_seqs_never_exceeds_what_the_kv_cache_holds() -> None:
    p = size("meta-llama/Llama-3.1-70B-Instruct", [pool("H100")], workload={"inputTokens": 8000, "outputTokens": 2000})
    assert p.max_num_seqs <= p.workload_concurrency + 1e-9


def test_cheaper_to_scale_up_than_out_is_chosen() -> None:
    """Two TP1 fp8 70B replicas on H200 hold fewer sequences than one TP2 replica; with a high concurrency
    target the search compares total GPUs, not GPUs per replica."""
    p = size(
        "meta-llama/Llama-3.1-70B-Instruct",
        [pool("H200")],
        model={"name": "meta-llama/Llama-3.1-70B-Instruct", "quantization": "fp8"},
        workload={"inputTokens": 2000, "outputTokens": 500, "concurrency": 600},
        replicas={"min": 1, "max": 16},
    )
    total = p.gpus_per_replica * p.replicas
    for tp in (1, 2, 4, 8):
        alternative = size(
            "meta-llama/Llama-3.1-70B-Instruct",
            [pool("H200")],
            model={"name": "meta-llama/Llama-3.1-70B-Instruct", "quantization": "fp8"},
            workload={"inputTokens": 2000, "outputTokens": 500, "concurrency": 600},
            replicas={"min": 1, "max": 16},
            gpu={"tensorParallelSize": tp},
        )
        assert total <= alternative.gpus_per_replica * alternative.replicas


def test_tp_pin_is_honoured() -> None:
    p = size("meta-llama/Llama-3.1-8B-Instruct", [pool("H100")], gpu={"tensorParallelSize": 4})
    assert p.tensor_parallel_size == 4


def test_tp_pin_vllm_would_refuse_names_the_field() -> None:
    with pytest.raises(SizingError) as err:
        size("microsoft/Phi-3-medium-128k-instruct", [pool("H100")], gpu={"tensorParallelSize": 4})
    assert err.value.field == "spec.gpu.tensorParallelSize"
    assert "10 KV heads" in err.value.problem
    assert "1, 2" in err.value.fix


def test_max_model_len_that_cannot_fit_names_the_field_and_the_longest_that_does() -> None:
    with pytest.raises(SizingError) as err:
        size(
            "meta-llama/Llama-3.1-8B-Instruct",
            [pool("H100", per_node=1, max_nodes=1)],
            serving={"maxModelLen": 131072, "gpuMemoryUtilization": 0.3},
        )
    assert err.value.field == "spec.serving.maxModelLen"
    longest = int(err.value.fix.split("to ")[1].split(" or")[0].replace(",", ""))
    assert 40_000 < longest < 131_072
    assert "lower spec.serving.maxModelLen" in err.value.fix


def test_405b_bf16_with_only_small_l40s_pool_cannot_be_placed() -> None:
    with pytest.raises(SizingError) as err:
        size("meta-llama/Llama-3.1-405B-Instruct", [pool("L40S", max_nodes=2)])
    assert err.value.field == "spec.gpu.products"
    assert "405.9B" in err.value.problem


def test_unknown_gpu_product() -> None:
    with pytest.raises(SizingError) as err:
        size("meta-llama/Llama-3.1-8B-Instruct", [pool("H100")], gpu={"products": ["TPU-v5"]})
    assert err.value.field == "spec.gpu.products"


def test_product_not_offered_by_any_pool() -> None:
    with pytest.raises(SizingError) as err:
        size("meta-llama/Llama-3.1-8B-Instruct", [pool("H100")], gpu={"products": ["B200"]})
    assert "allow one of: NVIDIA-H100-80GB-HBM3" in err.value.fix


def test_sizing_flags_in_extra_args_are_refused() -> None:
    with pytest.raises(RightsizerError) as err:
        size(
            "meta-llama/Llama-3.1-8B-Instruct", [pool("H100")], serving={"engine": {"extraArgs": ["--max-num-seqs=64"]}}
        )
    assert err.value.field == "spec.serving.engine.extraArgs[0]"
    assert err.value.fix == "set spec.serving.maxNumSeqs instead"


def test_explicit_format_without_a_quantized_checkpoint_is_refused() -> None:
    with pytest.raises(SizingError) as err:
        size(
            "meta-llama/Llama-3.1-8B-Instruct",
            [pool("H100")],
            model={"name": "meta-llama/Llama-3.1-8B-Instruct", "quantization": "w4a16-gptq"},
        )
    assert err.value.field == "spec.model.quantization"


def test_plan_is_deterministic() -> None:
    first = size("Qwen/Qwen2.5-72B-Instruct", [pool("H100"), pool("H200")])
    second = size("Qwen/Qwen2.5-72B-Instruct", [pool("H100"), pool("H200")])
    assert first.to_wire() == second.to_wire()


def test_args_carry_every_sizing_decision() -> None:
    p = size("meta-llama/Llama-3.1-8B-Instruct", [pool("H200")], serving={"maxModelLen": 16384})
    args = p.vllm_args
    flag = {args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")}
    assert flag["--tensor-parallel-size"] == str(p.tensor_parallel_size)
    assert flag["--max-num-seqs"] == str(p.max_num_seqs)
    assert flag["--max-model-len"] == "16384"
    assert flag["--max-num-batched-tokens"] == str(p.max_num_batched_tokens)
    assert flag["--gpu-memory-utilization"] == "0.9"


def test_max_model_len_above_the_model_limit_is_clamped_with_a_warning() -> None:
    p = size("Qwen/Qwen2.5-7B-Instruct", [pool("H100")], serving={"maxModelLen": 100_000})
    assert p.max_model_len == 32_768
    assert any("exceeds the model's limit" in w for w in p.warnings)


def test_small_gpus_use_the_small_scheduler_tier() -> None:
    p = size("meta-llama/Llama-3.1-8B-Instruct", [pool("L40S")], serving={"maxModelLen": 8192})
    assert p.max_num_batched_tokens == 2048
    assert p.max_num_seqs <= 256
