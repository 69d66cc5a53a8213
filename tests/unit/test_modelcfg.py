"""config.json parsing: the facts vLLM derives, and clear errors."""

import pytest

from rightsizer.errors import ModelConfigError
from rightsizer.facts import catalog
from rightsizer.model.config import LayerKind, WeightFormat, parse
from tests.unit.helpers import facts_of


def test_every_catalog_entry_parses() -> None:
    names = catalog.models()
    assert len(names) >= 25
    for name in names:
        facts_of(name)


def test_catalog_aliases() -> None:
    assert catalog.lookup("meta-llama/Meta-Llama-3.1-8B-Instruct") == catalog.lookup("meta-llama/Llama-3.1-8B-Instruct")
    assert catalog.lookup("META-LLAMA/LLAMA-3.3-70B-INSTRUCT") is not None
    assert catalog.lookup("nobody/unknown-model") is None


@pytest.mark.parametrize(
    ("model", "limit", "default"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 131_072, 131_072),  # llama3 rope: no extra scaling
        ("openai/gpt-oss-120b", 131_072, 131_072),  # yarn: original 4096 × factor 32
        ("deepseek-ai/DeepSeek-V3", 163_840, 163_840),  # yarn: 4096 × 40
        ("microsoft/Phi-3-medium-128k-instruct", 131_072, 4_096),  # longrope defaults to the original context
        ("google/gemma-3-27b-it", 131_072, 131_072),  # gemma3's scaling is already in max_position_embeddings
    ],
)
def test_max_model_len_as_vllm_derives_it(model: str, limit: int, default: int) -> None:
    facts = facts_of(model)
    assert (facts.max_model_len_limit, facts.default_max_model_len) == (limit, default)


def test_layer_kinds() -> None:
    assert set(facts_of("Qwen/Qwen2.5-7B-Instruct").layer_kinds) == {LayerKind.FULL}  # use_sliding_window false
    assert set(facts_of("mistralai/Mistral-7B-v0.1").layer_kinds) == {LayerKind.SLIDING}
    gemma3 = facts_of("google/gemma-3-27b-it")
    assert gemma3.layers_of(LayerKind.FULL) == 10 and gemma3.layers_of(LayerKind.SLIDING) == 52
    nxt = facts_of("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert nxt.layers_of(LayerKind.FULL) == 12 and nxt.layers_of(LayerKind.LINEAR) == 36


def test_mla_head_size_is_the_latent_width() -> None:
    facts = facts_of("deepseek-ai/DeepSeek-V3")
    assert facts.is_mla and facts.attention.head_dim == 576


def test_checkpoint_quantization_is_detected() -> None:
    assert facts_of("deepseek-ai/DeepSeek-V3").quantization.format == WeightFormat.FP8  # type: ignore[union-attr]
    gpt_oss = facts_of("openai/gpt-oss-120b").quantization
    assert gpt_oss is not None and gpt_oss.format == WeightFormat.MXFP4
    compressed = parse(
        {
            **catalog.lookup("meta-llama/Llama-3.1-8B-Instruct"),  # type: ignore[dict-item]
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}},
            },
        }
    )
    assert compressed.quantization is not None and compressed.quantization.format == WeightFormat.W4A16_GPTQ


def test_missing_key_is_named() -> None:
    config = dict(catalog.lookup("meta-llama/Llama-3.1-8B-Instruct") or {})
    del config["num_hidden_layers"]
    with pytest.raises(ModelConfigError, match="num_hidden_layers"):
        parse(config)


def test_unsupported_quantization_is_refused_clearly() -> None:
    config = {
        **(catalog.lookup("meta-llama/Llama-3.1-8B-Instruct") or {}),
        "quantization_config": {"quant_method": "hqq"},
    }
    with pytest.raises(ModelConfigError, match="hqq"):
        parse(config)
