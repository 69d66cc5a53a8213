"""The built-in model catalog against the models' published parameter counts.

Every count and every config.json here has its source in docs/models.md. A count from a model card, paper or report
is compared with the parameter inventory's total (what vLLM loads) within 0.5 %; a count from the Hub's safetensors
metadata, which covers every tensor of the checkpoint, MTP layers included, is compared with the checkpoint's total.
Architectures the inventory is known to misread (issue 12) are strict xfails, so each flips to a failure the day the
sizing fix lands and its mark must go.
"""

import json
from importlib import resources

import pytest

from rightsizer.facts import catalog
from rightsizer.model.params import active_parameters, checkpoint_parameters, inventory, nextn_groups, total_parameters
from tests.unit.helpers import REPO, facts_of

TOLERANCE = 0.005

# Total parameters as published (model card, paper or report; docs/models.md cites each). Models whose only
# published figure is coarser than the tolerance (Kimi-K2's "1T") or who have none are left out.
PUBLISHED: dict[str, float] = {
    # Seeded with the catalog (the same figures as tests/unit/test_params.py).
    "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
    "meta-llama/Llama-3.1-70B-Instruct": 70_553_706_496,
    "meta-llama/Llama-3.1-405B-Instruct": 405_853_388_800,
    "meta-llama/Llama-3.2-1B-Instruct": 1.24e9,
    "meta-llama/Llama-3.2-3B-Instruct": 3.21e9,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 46_702_792_704,
    "mistralai/Mixtral-8x22B-Instruct-v0.1": 140.6e9,
    "microsoft/Phi-3-medium-128k-instruct": 13_960_238_080,
    "microsoft/phi-4": 14.7e9,
    "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
    "Qwen/Qwen2.5-72B-Instruct": 72_706_203_648,
    "Qwen/Qwen3-8B": 8.2e9,
    "Qwen/Qwen3-14B": 14_768_307_200,
    "Qwen/Qwen3-32B": 32.8e9,
    "Qwen/Qwen3-30B-A3B": 30.5e9,
    "Qwen/Qwen3-235B-A22B": 235.1e9,
    "Qwen/Qwen3-Next-80B-A3B-Instruct": 80.0e9,
    "google/gemma-2-9b-it": 9.24e9,
    "google/gemma-2-27b-it": 27.2e9,
    "deepseek-ai/DeepSeek-V2-Lite-Chat": 15.7e9,
    "deepseek-ai/DeepSeek-V3": 671_026_419_200,
    "openai/gpt-oss-20b": 20.9e9,
    "openai/gpt-oss-120b": 116_829_156_672,
    # Added for issue 12.
    "meta-llama/Llama-3.3-70B-Instruct": 70_553_706_496,
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": 109e9,
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": 400e9,
    "deepseek-ai/DeepSeek-R1": 671e9,
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": 480e9,
    "Qwen/Qwen3.5-397B-A17B": 397e9,
    "microsoft/phi-2": 2_779_683_840,  # issue 12 item 7: the Hub's safetensors count (F16), exact
    # Added for the latency corpus. GLM-5.2: 744B total, 40B active (GLM-5's shapes; the DSA indexer is not counted).
    "zai-org/GLM-5.2-FP8": 744e9,
}

# Active parameters per token as published, where the total is too coarse to pin (Kimi-K2.5's "1T").
PUBLISHED_ACTIVE: dict[str, float] = {
    "nvidia/Kimi-K2.5-NVFP4": 32.86e9,  # NVIDIA's Kimi K2.5 table: 32.86B active (the language model)
}

# The Hub's safetensors totals: every tensor of the checkpoint, the MTP layers vLLM builds only for speculative
# decoding included (and FP8 block scales, 1 in 16,384), so compared with checkpoint_parameters.
CHECKPOINT_TOTALS: dict[str, float] = {
    "deepseek-ai/DeepSeek-V3": 684_531_386_000,  # FP8 weights and scales, the MTP layer 61 included
    "zai-org/GLM-4.5-Air": 110_468_824_832,  # BF16, the MTP layer 46 with its own embed_tokens and head included
    # The Hub's "229B". The checkpoint ships none of the 3 MTP modules its config.json names (num_mtp_modules).
    "MiniMaxAI/MiniMax-M2.5": 229e9,
    "nvidia/MiniMax-M2.5-NVFP4": 229e9,  # the same weights in NVFP4 (its own Hub count is of packed FP4 bytes)
}

# BF16 checkpoints hold no quantization scales, so their Hub total is the weight count to the parameter.
EXACT_CHECKPOINT_TOTALS = ("zai-org/GLM-4.5-Air",)

# The cases the inventory misreads today, with what it misreads (none since issue 12: MiniMax-M2.5 and GLM-4.5-Air
# had been compared with figures that count something else; docs/models.md says what).
MISREAD: dict[str, str] = {}


def _cases(counts: dict[str, float]) -> list[object]:
    return [
        pytest.param(
            model,
            published,
            id=model,
            marks=[pytest.mark.xfail(strict=True, reason=MISREAD[model])] if model in MISREAD else [],
        )
        for model, published in counts.items()
    ]


@pytest.mark.parametrize(("model", "published"), _cases(PUBLISHED))
def test_parameter_count_matches_the_published_count(model: str, published: float) -> None:
    assert total_parameters(facts_of(model)) == pytest.approx(published, rel=TOLERANCE)


@pytest.mark.parametrize(("model", "published"), _cases(PUBLISHED_ACTIVE))
def test_active_parameter_count_matches_the_published_count(model: str, published: float) -> None:
    assert active_parameters(facts_of(model)) == pytest.approx(published, rel=TOLERANCE)


@pytest.mark.parametrize(("model", "published"), _cases(CHECKPOINT_TOTALS))
def test_checkpoint_count_matches_the_hubs_safetensors_total(model: str, published: float) -> None:
    assert checkpoint_parameters(facts_of(model)) == pytest.approx(published, rel=TOLERANCE)


@pytest.mark.parametrize("model", EXACT_CHECKPOINT_TOTALS)
def test_checkpoint_count_of_a_bf16_checkpoint_is_exact(model: str) -> None:
    assert checkpoint_parameters(facts_of(model)) == CHECKPOINT_TOTALS[model]


def test_mtp_layers_count_in_the_checkpoint_but_not_in_what_vllm_loads() -> None:
    glm = facts_of("zai-org/GLM-4.5-Air")  # num_nextn_predict_layers: 1
    assert all(g.layer < glm.num_layers for g in inventory(glm))
    extra = checkpoint_parameters(glm) - total_parameters(glm)
    assert extra == sum(g.count for g in nextn_groups(glm))
    # one MoE decoder layer, eh_proj, the norms, and the layer's own embed_tokens and shared_head.head copies
    assert extra == 3_616_573_568
    minimax = facts_of("MiniMaxAI/MiniMax-M2.5")  # num_mtp_modules: 3, which the checkpoint does not ship
    assert checkpoint_parameters(minimax) == total_parameters(minimax)


def test_published_counts_and_misreads_name_catalog_models() -> None:
    models = set(catalog.models())
    assert set(PUBLISHED) <= models
    assert set(PUBLISHED_ACTIVE) <= models
    assert set(CHECKPOINT_TOTALS) <= models
    assert set(EXACT_CHECKPOINT_TOTALS) <= set(CHECKPOINT_TOTALS)
    assert set(MISREAD) <= set(PUBLISHED) | set(CHECKPOINT_TOTALS)


def test_every_model_name_finds_its_own_file() -> None:
    """An alias must not shadow a model that has its own file (Llama-3.3 and DeepSeek-R1 used to be aliases)."""
    folder = resources.files("rightsizer.facts").joinpath("models")
    for model in catalog.models():
        own = json.loads(folder.joinpath(model.replace("/", "--") + ".json").read_text())
        assert catalog.lookup(model) == own, model
        assert catalog.lookup(model.upper()) == own, model


def test_docs_list_every_catalog_model() -> None:
    text = (REPO / "docs" / "models.md").read_text()
    missing = [model for model in catalog.models() if f"`{model}`" not in text]
    assert not missing, f"add these to docs/models.md with their sources: {missing}"


def test_kimi_k2_5_nvfp4_reads_its_deepseek_v3_text_model_and_modelopt_nvfp4() -> None:
    kimi = facts_of("nvidia/Kimi-K2.5-NVFP4")  # KimiK25ForConditionalGeneration around a DeepseekV3 text_config
    assert (kimi.model_type, kimi.is_mla, kimi.num_layers, kimi.nextn_layers) == ("deepseek_v3", True, 61, 0)
    assert kimi.moe is not None and (kimi.moe.num_experts, kimi.moe.dense_layers) == (384, frozenset({0}))
    assert kimi.quantization is not None
    assert (kimi.quantization.format.value, kimi.quantization.group_size) == ("nvfp4", 16)
    # Its MoonViT encoder (vision_config model_type "") is not one vision.py knows: left out, not guessed.
    assert kimi.vision is None


def test_glm_5_2_fp8_reads_as_mla_with_moe_after_three_dense_layers() -> None:
    glm = facts_of("zai-org/GLM-5.2-FP8")  # GlmMoeDsaForCausalLM; the DSA indexer (index_* keys) is not modelled
    assert glm.attention.mla is not None and (glm.attention.mla.qk_nope_head_dim, glm.attention.mla.v_head_dim) == (
        192,
        256,
    )
    assert glm.moe is not None and glm.moe.dense_layers == frozenset({0, 1, 2})
    assert glm.quantization is not None and glm.quantization.block == (128, 128)
    assert glm.nextn_layers == 1
