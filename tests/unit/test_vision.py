"""Vision encoders counted in the weights (issue 12 item 5), one family per test, against published totals.

Encoder layouts follow vLLM's model files at v0.11.0 (the same modules at v0.19.0): siglip.py + gemma3_mm.py
(Gemma 3), qwen2_5_vl.py, qwen3_vl.py, pixtral.py + mistral3.py (Mistral Small 3.x), mllama4.py (Llama 4)."""

from __future__ import annotations

from typing import Any

import pytest

from rightsizer.model.config import parse
from rightsizer.model.params import total_parameters
from tests.unit.helpers import facts_of

TOLERANCE = 0.005

# Mistral-Small-3.1-24B-Instruct-2503's config.json as NVIDIA/TensorRT-LLM@0373e5a1d2d9e154bb878d6dce47f52194a4963e:
# tests/unittest/_torch/modeling/test_modeling_mistral.py vendors it (num_hidden_layers restored to the original 40
# its comment states; dropout, initializer and token keys left out).
MISTRAL_SMALL_3_1: dict[str, Any] = {
    "architectures": ["Mistral3ForConditionalGeneration"],
    "model_type": "mistral3",
    "multimodal_projector_bias": False,
    "projector_hidden_act": "gelu",
    "spatial_merge_size": 2,
    "text_config": {
        "head_dim": 128,
        "hidden_size": 5120,
        "intermediate_size": 32768,
        "max_position_embeddings": 131072,
        "model_type": "mistral",
        "num_attention_heads": 32,
        "num_hidden_layers": 40,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000000.0,
        "sliding_window": None,
        "vocab_size": 131072,
    },
    "torch_dtype": "bfloat16",
    "vision_config": {
        "head_dim": 64,
        "hidden_size": 1024,
        "image_size": 1540,
        "intermediate_size": 4096,
        "model_type": "pixtral",
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "rope_theta": 10000.0,
    },
    "vision_feature_layer": -1,
}

# Qwen2.5-VL-7B-Instruct's config.json as NVIDIA/TensorRT-LLM@03dd9bb8387c5c3015f41124da0f338751a177c0:
# tests/unittest/_torch/modeling/test_modeling_qwen2_5vl.py vendors it (28 text layers and 32 vision blocks restored
# from its comments, fullatt_block_indexes from the published file).
QWEN2_5_VL_7B: dict[str, Any] = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "max_position_embeddings": 128000,
    "model_type": "qwen2_5_vl",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "hidden_act": "silu",
        "hidden_size": 1280,
        "in_chans": 3,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,
        "window_size": 112,
    },
    "vocab_size": 152064,
}


def test_gemma_3_27b_counts_its_siglip_encoder() -> None:
    # Gemma 3 technical report (arXiv 2503.19786) as summarised at https://oss.report/models/google/gemma-3-27b-it:
    # 25.6B non-embedding + 1.4B embedding parameters and the 400M SigLIP encoder, 27.4B in all.
    facts = facts_of("google/gemma-3-27b-it")
    assert facts.vision is not None and facts.vision.family == "siglip"
    assert facts.vision.parameters == pytest.approx(0.417e9 + 6.2e6, rel=0.01)  # SigLIP 417M + the projector
    assert total_parameters(facts) == pytest.approx(27.4e9, rel=TOLERANCE)


def test_qwen3_vl_8b_counts_its_vit_and_deepstack_mergers() -> None:
    # 8.8B: https://haimaker.ai/models/qwen/qwen3-vl-8b-instruct ("a qwen3_vl 8.8B-parameter model").
    facts = facts_of("Qwen/Qwen3-VL-8B-Instruct")
    assert facts.vision is not None and facts.vision.family == "qwen3_vl"
    assert total_parameters(facts) == pytest.approx(8.8e9, rel=TOLERANCE)


@pytest.mark.parametrize(
    "model", ["Qwen/Qwen3-VL-32B-Instruct", "Qwen/Qwen3-VL-30B-A3B-Instruct", "Qwen/Qwen3-VL-235B-A22B-Instruct"]
)
def test_every_qwen3_vl_size_carries_an_encoder(model: str) -> None:
    facts = facts_of(model)
    assert facts.vision is not None and 0.5e9 < facts.vision.parameters < 0.6e9


def test_mistral_small_3_1_counts_its_pixtral_encoder_and_patch_merger() -> None:
    # 24B: the model card (https://huggingface.co/mistralai/Mistral-Small-3.1-24B-Instruct-2503, "24 billion
    # parameters"; the transformers docs page for Mistral 3 points to the same checkpoint).
    facts = parse(MISTRAL_SMALL_3_1)
    assert facts.vision is not None and facts.vision.family == "pixtral"
    assert total_parameters(facts) == pytest.approx(24e9, rel=TOLERANCE)


def test_qwen2_5_vl_7b_is_qwen2_5_7b_plus_its_vit() -> None:
    # The language model is Qwen2.5-7B's (7,615,616,512 exactly: ../shared/docs/vllm-ground-truth.md section 13),
    # with q/k/v biases as vLLM's Qwen2 layers build them. No published encoder count was found: the bound only says
    # the 32-block, 1280-wide ViT and its merger are counted, once.
    facts = parse(QWEN2_5_VL_7B)
    assert facts.vision is not None and facts.vision.family == "qwen2_5_vl"
    assert facts.attention.qkv_bias
    assert total_parameters(facts) - facts.vision.parameters == 7_615_616_512
    assert 0.6e9 < facts.vision.parameters < 0.7e9


def test_a_projector_bias_adds_two_text_widths() -> None:
    biased = parse({**MISTRAL_SMALL_3_1, "multimodal_projector_bias": True})
    plain = parse(MISTRAL_SMALL_3_1)
    assert biased.vision is not None and plain.vision is not None
    assert biased.vision.parameters - plain.vision.parameters == 2 * 5120


def test_an_unknown_encoder_is_not_guessed() -> None:
    config = {**MISTRAL_SMALL_3_1, "vision_config": {**MISTRAL_SMALL_3_1["vision_config"], "model_type": "other"}}
    assert parse(config).vision is None
