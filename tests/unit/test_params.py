"""Parameter counts from config.json against the models' published exact totals."""

import pytest

from rightsizer.model.params import padded_vocab, pipeline_layers, total_parameters
from tests.unit.helpers import facts_of

# Exact counts published with the models (vllm-ground-truth.md §13).
PUBLISHED = {
    "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
    "meta-llama/Llama-3.1-70B-Instruct": 70_553_706_496,
    "meta-llama/Llama-3.1-405B-Instruct": 405_853_388_800,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 46_702_792_704,
    "microsoft/Phi-3-medium-128k-instruct": 13_960_238_080,
    "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
    "Qwen/Qwen2.5-72B-Instruct": 72_706_203_648,
    "Qwen/Qwen3-14B": 14_768_307_200,
    "deepseek-ai/DeepSeek-V3": 671_026_419_200,
    "openai/gpt-oss-120b": 116_829_156_672,
}

# Rounded totals from the model cards, for catalog entries without an exact published count.
ROUNDED_BILLIONS = {
    "Qwen/Qwen3-8B": 8.2,
    "Qwen/Qwen3-32B": 32.8,
    "Qwen/Qwen3-30B-A3B": 30.5,
    "Qwen/Qwen3-235B-A22B": 235.1,
    "microsoft/phi-4": 14.7,
    "google/gemma-2-9b-it": 9.24,
    "google/gemma-2-27b-it": 27.2,
    "mistralai/Mixtral-8x22B-Instruct-v0.1": 140.6,
    "meta-llama/Llama-3.2-1B-Instruct": 1.24,
    "meta-llama/Llama-3.2-3B-Instruct": 3.21,
    "openai/gpt-oss-20b": 20.9,
    "deepseek-ai/DeepSeek-V2-Lite-Chat": 15.7,
    "Qwen/Qwen3-Next-80B-A3B-Instruct": 80.0,
}


@pytest.mark.parametrize(("model", "expected"), PUBLISHED.items())
def test_exact_parameter_count(model: str, expected: int) -> None:
    assert total_parameters(facts_of(model)) == expected


@pytest.mark.parametrize(("model", "billions"), ROUNDED_BILLIONS.items())
def test_rounded_parameter_count(model: str, billions: float) -> None:
    assert total_parameters(facts_of(model)) / 1e9 == pytest.approx(billions, rel=0.01)


@pytest.mark.parametrize(
    ("layers", "pp", "expected"),
    [
        (32, 2, [16, 16]),
        (32, 4, [8, 8, 8, 8]),
        (126, 2, [63, 63]),
        (61, 2, [31, 30]),  # the remainder goes to the stage before the last
        (10, 4, [2, 3, 3, 2]),  # vLLM's get_pp_indices: counting back from the second to last stage
    ],
)
def test_pipeline_split_matches_vllm(layers: int, pp: int, expected: list[int]) -> None:
    assert [len(r) for r in pipeline_layers(layers, pp)] == expected


def test_vocab_is_padded_to_64() -> None:
    assert padded_vocab(32064) == 32064
    assert padded_vocab(151_936) == 151_936
    assert padded_vocab(100) == 128
