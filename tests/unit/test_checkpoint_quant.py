"""quantization_config read exactly, and a weight term that is always physically plausible (issue 12).

Each case is a published checkpoint's quantization_config; the source is named beside it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rightsizer.api.v1alpha1.llmdeployment import ModelSource
from rightsizer.errors import ModelConfigError, SizingError
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import GIB, profile_for
from rightsizer.model.checkpoint_quant import checkpoint_quantization, merge_hf_quant_config
from rightsizer.model.config import WeightFormat, parse
from rightsizer.model.memory import EngineSettings, check_terms, replica_memory, weight_bytes
from rightsizer.model.params import pipeline_layers, total_parameters
from rightsizer.model.quantization import resolve_weights

LLAMA_405B = "meta-llama/Llama-3.1-405B-Instruct"

# neuralmagic/Meta-Llama-3.1-405B-Instruct-quantized.w4a16 — the model card
# (https://huggingface.co/neuralmagic/Meta-Llama-3.1-405B-Instruct-quantized.w4a16) states "Symmetric per-channel
# quantization ... GPTQ ... llm-compressor": a compressed-tensors int4 channel scheme, lm_head left in bf16.
PER_CHANNEL_COMPRESSED = {
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "channel", "group_size": None},
        }
    },
    "ignore": ["lm_head"],
}
# The same checkpoint as AutoGPTQ writes it with group_size -1 (per channel), the case issue 12 reports as planned
# with -740 GiB of weights.
PER_CHANNEL_GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": True, "sym": True}

# vllm-project/llm-compressor issue #1914 (2025-10-17): the published quantization_config of a Qwen3-VL-30B-A3B
# W8A16 compressed-tensors checkpoint: int8, group 32, symmetric, with vision and router modules ignored.
QWEN3_VL_W8A16_GROUP32 = {
    "config_groups": {
        "group_0": {
            "format": "pack-quantized",
            "input_activations": None,
            "output_activations": None,
            "targets": ["Linear"],
            "weights": {
                "actorder": None,
                "block_structure": None,
                "dynamic": False,
                "group_size": 32,
                "num_bits": 8,
                "observer": "mse",
                "observer_kwargs": {},
                "strategy": "group",
                "symmetric": True,
                "type": "int",
            },
        }
    },
    "format": "pack-quantized",
    "ignore": ["model.visual.merger.linear_fc1", "model.language_model.layers.0.mlp.gate", "lm_head"],
    "quant_method": "compressed-tensors",
}


def _config(model: str, quantization: dict[str, Any] | None) -> dict[str, Any]:
    config = copy.deepcopy(catalog.lookup(model))
    assert config is not None
    config.pop("quantization_config", None)
    if quantization is not None:
        config["quantization_config"] = quantization
    return config


def _settings(fmt: WeightFormat, tp: int = 8, pp: int = 1) -> EngineSettings:
    return EngineSettings(
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        max_num_seqs=256,
        max_num_batched_tokens=8192,
        max_model_len=8192,
        gpu_memory_utilization=0.9,
        dtype="bfloat16",
        kv_cache_dtype="auto",
        weight_format=fmt,
    )


@pytest.mark.parametrize("quantization", [PER_CHANNEL_GPTQ, PER_CHANNEL_COMPRESSED], ids=["gptq", "compressed"])
def test_per_channel_int4_405b_weighs_a_quarter_of_bf16_not_less_than_nothing(quantization: dict[str, Any]) -> None:
    facts = parse(_config(LLAMA_405B, quantization))
    q = facts.quantization
    assert q is not None and q.per_channel and q.group_size is None and q.format == WeightFormat.W4A16_GPTQ
    settings = _settings(q.format, tp=8)
    per_gpu = weight_bytes(facts, settings, 0, range(126))
    bf16 = weight_bytes(parse(_config(LLAMA_405B, None)), _settings(WeightFormat.NONE, tp=8), 0, range(126))
    # int4 values with one fp16 scale per output row (plus g_idx for desc_act): just over a quarter of bf16 for the
    # quantized linears; embeddings and LM head stay bf16.
    assert 0.25 * bf16 < per_gpu < 0.32 * bf16
    # 403B linear weights × 0.5 B / 8 GPUs = 23.5 GiB, plus the bf16 embedding and LM head (2 × 2.1B × 2 B / 8).
    assert 23.5 * GIB < per_gpu < 25 * GIB


def test_per_channel_405b_does_not_fit_one_h100() -> None:
    facts = parse(_config(LLAMA_405B, PER_CHANNEL_GPTQ))
    memory = replica_memory(facts, _settings(WeightFormat.W4A16_GPTQ, tp=1), lookup("H100"), profile_for("0.19.0"))
    assert memory.binding.weights > 180 * GIB and memory.blocks == 0 and not memory.fits


def test_group_size_act_order_and_zero_points_are_read() -> None:
    asym = {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True, "sym": False}
    q = checkpoint_quantization({"quantization_config": asym})
    assert q is not None and (q.group_size, q.act_order, q.zero_points) == (128, True, True)
    # One 4096x4096 linear: 0.5 B values + (2 B scale + 0.5 B zero) per 128 + 4 B g_idx per input row.
    assert q.bytes_per_param(4096 * 4096, 4096, 4096) == pytest.approx(0.5 + 2.5 / 128 + 4 / 4096)
    sym = checkpoint_quantization({"quantization_config": {**asym, "sym": True, "desc_act": False}})
    assert sym is not None and sym.bytes_per_param(4096 * 4096, 4096, 4096) == pytest.approx(0.5 + 2 / 128)


def test_three_bit_gptq_is_refused_not_shown_as_w8a8() -> None:
    with pytest.raises(ModelConfigError, match=r"quantization_config\.bits: 3-bit GPTQ"):
        checkpoint_quantization({"quantization_config": {"quant_method": "gptq", "bits": 3, "group_size": 128}})


def test_eight_bit_awq_is_refused_as_vllm_does() -> None:
    with pytest.raises(ModelConfigError, match="8-bit AWQ"):
        checkpoint_quantization({"quantization_config": {"quant_method": "awq", "bits": 8}})


@pytest.mark.parametrize("group", [0, -2, 1.5, "128", True])
def test_impossible_group_sizes_are_refused_by_name(group: object) -> None:
    with pytest.raises(ModelConfigError, match="group_size"):
        checkpoint_quantization({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": group}})


def test_compressed_tensors_int8_group32_with_its_ignore_list() -> None:
    q = checkpoint_quantization({"quantization_config": QWEN3_VL_W8A16_GROUP32})
    assert q is not None and (q.format, q.weight_bits, q.group_size) == (WeightFormat.W8A8, 8, 32)
    assert "lm_head" in q.ignored_modules and "model.language_model.layers.0.mlp.gate" in q.ignored_modules
    assert q.bytes_per_param(2048 * 768, 768, 2048) == pytest.approx(1 + 4 / 32)  # fp32 scale per 32


def test_fp8_block_scales_deepseek_v3() -> None:
    """deepseek-ai/DeepSeek-V3 config.json (catalog): fp8 with weight_block_size [128, 128], one fp32 scale each."""
    q = parse(catalog.lookup("deepseek-ai/DeepSeek-V3") or {}).quantization
    assert q is not None and q.format == WeightFormat.FP8 and q.block == (128, 128)
    assert q.bytes_per_param(7168 * 2048, 2048, 7168) == pytest.approx(1 + 4 / (128 * 128))


def test_mxfp4_gpt_oss_quantizes_experts_only() -> None:
    q = parse(catalog.lookup("openai/gpt-oss-120b") or {}).quantization
    assert q is not None and q.experts_only and q.bytes_per_param(32 * 32, 32, 32) == pytest.approx(0.5 + 1 / 32)


@pytest.mark.parametrize(
    ("model", "attention_quantized"),
    [
        ("openai/gpt-oss-120b", False),  # modules_to_not_convert: model.layers.*.self_attn
        ("nvidia/MiniMax-M2.5-NVFP4", False),  # model.layers.N.self_attn*
        # Only norms and the DSA indexer inside self_attn are left out; the attention projections are fp8.
        ("zai-org/GLM-5.2-FP8", True),
    ],
)
def test_attention_is_unquantized_only_when_its_projections_are_ignored(model: str, attention_quantized: bool) -> None:
    facts = parse(catalog.lookup(model) or {})
    assert resolve_weights(ModelSource(name=model), facts).quantize_attention is attention_quantized


def test_nvfp4_modelopt_minimax_in_config_json() -> None:
    """nvidia/MiniMax-M2.5-NVFP4 config.json (catalog): ModelOpt NVFP4, group 16, an FP8 scale per 16 values."""
    q = parse(catalog.lookup("nvidia/MiniMax-M2.5-NVFP4") or {}).quantization
    assert q is not None and (q.format, q.group_size, q.scale_bytes) == (WeightFormat.NVFP4, 16, 1)
    assert "lm_head" in q.ignored_modules
    assert q.bytes_per_param(3072 * 1536, 1536, 3072) == pytest.approx(0.5 + 1 / 16)


def test_hf_quant_config_json_is_merged_as_vllm_merges_it() -> None:
    """nvidia/Qwen3-235B-A22B-NVFP4 keeps its settings in hf_quant_config.json ({"producer": {"name": "modelopt"},
    "quantization": {"quant_algo": "NVFP4", "group_size": 16, "exclude_modules": [...]}}); merged, the model sizes
    as NVFP4 instead of bf16."""
    hf_quant = {
        "producer": {"name": "modelopt", "version": "0.29.0"},
        "quantization": {
            "quant_algo": "NVFP4",
            "kv_cache_quant_algo": None,
            "group_size": 16,
            "exclude_modules": ["lm_head", "model.layers.0.mlp.gate"],
        },
    }
    config = merge_hf_quant_config(_config("Qwen/Qwen3-235B-A22B", None), hf_quant)
    q = parse(config).quantization
    assert q is not None and q.method == "modelopt" and q.format == WeightFormat.NVFP4
    assert q.ignored_modules == ("lm_head", "model.layers.0.mlp.gate")
    # config.json's own quantization_config wins, as in vLLM (ModelOpt >= 0.31 writes it there).
    own = {"quant_method": "fp8"}
    assert merge_hf_quant_config({"quantization_config": own}, hf_quant)["quantization_config"] == own


def test_implausible_weights_are_refused_with_the_field() -> None:
    facts = parse(_config("meta-llama/Llama-3.1-8B-Instruct", None))
    with pytest.raises(SizingError, match=r"quantization_config: weights of -1\.00 GiB"):
        check_terms(facts, _settings(WeightFormat.NONE), -GIB, 8e9, activation=0.0, non_torch=0.0)


@pytest.mark.parametrize("model", catalog.models())
def test_every_catalog_model_has_plausible_weights_at_every_stage(model: str) -> None:
    facts = parse(catalog.lookup(model) or {})
    fmt = facts.quantization.format if facts.quantization else WeightFormat.NONE
    settings = _settings(fmt, tp=1, pp=2)
    total = sum(
        weight_bytes(facts, settings, i, layers) for i, layers in enumerate(pipeline_layers(facts.num_layers, 2))
    )
    assert 0.25 * total_parameters(facts) < total < 4.1 * total_parameters(facts)
