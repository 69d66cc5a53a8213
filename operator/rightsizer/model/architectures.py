"""The architectures the config parser knows, and what happens to one it does not.

A model_type is known when the parser reads everything vLLM's model class builds from it and a test pins a published
parameter count for it (tests/unit/test_catalog.py, test_modelcfg.py). Any other config.json is still read with the
generic keys, as a standard decoder: every layer attention (unless layer_types or a sliding_window say otherwise)
and a dense or MoE MLP. That is right for most Llama-like models, but silently wrong for parts the parser cannot see,
so a plan for an unknown architecture carries a warning (sizing/explain.py), and its MLP width must be stated, not
defaulted (model/config.py).
"""

from __future__ import annotations

from typing import Final

KNOWN_MODEL_TYPES: Final = frozenset(
    {
        # The text model_type ModelFacts.model_type holds (multimodal configs are read through text_config).
        "deepseek_v2",
        "deepseek_v3",
        "deepseek_v32",
        "gemma2",
        "gemma3_text",
        "glm4_moe",
        # vLLM builds GlmMoeDsaForCausalLM as DeepSeek-V3.2 (deepseek_v2.py, vllm-project/vllm PR #34124:
        # `class GlmMoeDsaForCausalLM(DeepseekV2ForCausalLM): pass`); as for deepseek_v32 the DSA indexer is not read.
        "glm_moe_dsa",
        "gpt_oss",
        "granitemoehybrid",
        "kimi_k2",
        "llama",
        "llama4_text",
        "minimax_m2",
        "mistral",
        "mixtral",
        "phi",
        "phi3",
        "qwen2",
        "qwen2_5_vl_text",
        "qwen2_moe",
        "qwen3",
        "qwen3_5_moe_text",
        "qwen3_5_text",
        "qwen3_moe",
        "qwen3_next",
        "qwen3_vl_moe_text",
        "qwen3_vl_text",
    }
)


def is_known(model_type: str) -> bool:
    return model_type in KNOWN_MODEL_TYPES


def unknown_architecture_warning(architecture: str, model_type: str) -> str | None:
    """The plan warning for a model_type the parser does not know; None for a known one."""
    if is_known(model_type):
        return None
    named = f"model_type {model_type}" if model_type else "no model_type"
    return (
        f"architecture {architecture} ({named}) is not one rightsizer knows: it is sized as a standard decoder "
        "(attention and a dense or MoE MLP in every layer, read from the generic config.json keys), so anything "
        "else it has is not counted (a vision or audio encoder, multi-token-prediction layers, unusual layer "
        "kinds or extra tensors); compare the parameter count in reasons with the published size"
    )
