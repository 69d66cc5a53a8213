"""Adversarial config.json input: bounded work, one-line refusals naming the key, no traceback (issues 12, 13).

The property tests run a fixed, derandomized budget so CI is deterministic and bounded."""

from __future__ import annotations

import copy
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rightsizer.errors import ModelConfigError, SizingError
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat, parse
from rightsizer.model.memory import EngineSettings, replica_memory

BASE = "meta-llama/Llama-3.1-8B-Instruct"
PROPERTY = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _base(model: str = BASE) -> dict[str, Any]:
    config = copy.deepcopy(catalog.lookup(model))
    assert config is not None
    return config


def test_a_million_layers_is_refused_at_once_without_memory_growth() -> None:
    config = {**_base(), "num_hidden_layers": 1_000_000}
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ModelConfigError, match=r"spec\.model\.config\.num_hidden_layers: must be between 1 and 1024"):
        parse(config)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.1 and peak < 1 << 20


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"num_key_value_heads": 7}, "num_key_value_heads"),  # 32 heads are not a multiple of 7
        ({"head_dim": 7}, "head_dim"),
        ({"intermediate_size": -1}, "intermediate_size"),
        ({"intermediate_size": 0}, "intermediate_size"),
        ({"vocab_size": "128256"}, "vocab_size"),
        ({"hidden_size": 4096.0}, "hidden_size"),
        ({"num_attention_heads": True}, "num_attention_heads"),
        ({"layer_types": ["full_attention"] * 3}, "layer_types"),
        ({"torch_dtype": "int3"}, "torch_dtype"),
        ({"num_local_experts": 8, "num_experts_per_tok": 9}, "num_experts_per_tok"),
        ({"num_local_experts": -8, "num_experts_per_tok": 2}, "num_local_experts"),
        ({"num_local_experts": 1_000_000, "num_experts_per_tok": 2}, "num_local_experts"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 1e12}}, "rope_scaling"),
        ({"quantization_config": "fp8"}, "quantization_config"),
    ],
)
def test_configs_vllm_would_refuse_are_refused_naming_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(ModelConfigError) as refused:
        parse({**_base(), **changes})
    line = refused.value.one_line()
    assert key in refused.value.field and "\n" not in line


def test_deep_and_wide_configs_are_refused() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ModelConfigError, match="nested deeper"):
        parse({**_base(), "extra": deep})
    with pytest.raises(ModelConfigError, match="more than 200000 values"):
        parse({**_base(), "extra": list(range(300_000))})


# --- properties --------------------------------------------------------------------------------------------------

_KEYS = [
    "num_hidden_layers",
    "hidden_size",
    "intermediate_size",
    "vocab_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "num_local_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "interleave_moe_layer_step",
    "first_k_dense_replace",
    "sliding_window",
    "partial_rotary_factor",
    "tie_word_embeddings",
    "layer_types",
    "rope_scaling",
    "quantization_config",
    "kv_lora_rank",
    "torch_dtype",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 7, 8, 64, 128, 4096, 2**31, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_QUANT = st.fixed_dictionaries(
    {
        "quant_method": st.sampled_from(["gptq", "awq", "fp8", "compressed-tensors", "modelopt", "mxfp4", "x"]),
        "bits": _SCALARS,
        "group_size": _SCALARS,
        "desc_act": _SCALARS,
        "weight_block_size": _VALUES,
        "config_groups": _VALUES,
        "quant_algo": st.sampled_from(["NVFP4", "FP8", "W4A8_AWQ", ""]),
    }
)
_BASES = st.sampled_from(
    [BASE, "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V2-Lite-Chat", "meta-llama/Llama-4-Scout-17B-16E-Instruct"]
)


def _assert_one_line(err: ModelConfigError | SizingError) -> None:
    assert err.field.startswith(("spec.", "--model-config")) and "\n" not in err.one_line()


def _check_memory(config: dict[str, Any]) -> None:
    facts = parse(config)
    fmt = facts.quantization.format if facts.quantization is not None else WeightFormat.NONE
    s = EngineSettings(1, 1, 16, 2048, 2048, 0.9, "bfloat16", "auto", fmt)
    memory = replica_memory(facts, s, lookup("H100"), profile_for("0.19.0"))
    for rank in memory.ranks:
        assert rank.weights >= 0 and rank.activation >= 0 and rank.non_torch >= 0 and rank.cuda_graphs >= 0
        assert rank.weights < 50e12  # bounded dimensions bound every term
    assert memory.blocks >= 0 and memory.kv_cache_tokens >= 0


@PROPERTY
@given(base=_BASES, changes=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=4))
def test_any_mutation_of_a_real_config_sizes_or_is_refused_in_one_line(base: str, changes: dict[str, Any]) -> None:
    config = {**_base(base), **changes}
    try:
        _check_memory(config)
    except (ModelConfigError, SizingError) as err:
        _assert_one_line(err)


@PROPERTY
@given(quantization=_QUANT)
def test_any_quantization_config_sizes_plausibly_or_is_refused(quantization: dict[str, Any]) -> None:
    try:
        _check_memory({**_base(), "quantization_config": quantization})
    except (ModelConfigError, SizingError) as err:
        _assert_one_line(err)


@PROPERTY
@given(config=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=12))
def test_arbitrary_dicts_never_raise_anything_else(config: dict[str, Any]) -> None:
    try:
        _check_memory(config)
    except (ModelConfigError, SizingError) as err:
        _assert_one_line(err)
