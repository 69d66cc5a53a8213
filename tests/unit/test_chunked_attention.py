"""Llama 4's chunked local attention in the KV cache layout (issue 12 item 2).

vLLM's llama4.py builds ChunkedLocalAttention on every layer with rotary embeddings when attention_chunk_size is set
(the NoPE layers, every 4th by transformers' default, attend globally). Whether those layers get their own KV groups
depends on the release: vllm/envs.py defaults VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE to 0 at v0.10.2 and
v0.11.0 (hybrid KV cache manager disabled, every layer sized as full attention by unify_hybrid_kv_cache_specs) and to
1 at v0.19.0, where ChunkedLocalAttentionSpec charges a request min(chunk + max_num_batched_tokens, max_model_len)
tokens (vllm/v1/kv_cache_interface.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rightsizer.errors import ModelConfigError
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import LayerKind, WeightFormat, parse
from rightsizer.model.memory import EngineSettings, replica_memory
from tests.unit.helpers import facts_of

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"


def _settings(max_len: int, batched: int = 8192) -> EngineSettings:
    return EngineSettings(4, 1, 256, batched, max_len, 0.9, "bfloat16", "auto", WeightFormat.NONE)


def test_scout_chunks_three_of_every_four_layers() -> None:
    facts = facts_of(SCOUT)
    assert facts.attention_chunk_size == 8192
    assert sorted(set(range(facts.num_layers)) - facts.chunked_layers) == list(range(3, 48, 4))
    assert LayerKind.CHUNKED not in facts.layer_kinds  # how layers compute is unchanged (perf reads it)


def test_vllm_0_11_sizes_every_layer_as_full_attention() -> None:
    memory = replica_memory(facts_of(SCOUT), _settings(262144), lookup("H100"), profile_for("0.11.0"))
    layout = memory.binding.layout
    assert layout.groups == 1
    assert layout.layer_counts == ((LayerKind.FULL, 48),)
    assert layout.blocks_per_request == 262144 // 16


@pytest.mark.parametrize("batched", [2048, 8192])
def test_vllm_0_19_keeps_chunked_layers_in_their_own_groups(batched: int) -> None:
    memory = replica_memory(facts_of(SCOUT), _settings(262144, batched), lookup("H100"), profile_for("0.19.0"))
    layout = memory.binding.layout
    # 36 chunked and 12 global layers: groups of 12 layers, three chunked groups and one full one.
    assert (layout.groups, layout.layers_per_group) == (4, 12)
    assert layout.layer_counts == ((LayerKind.CHUNKED, 36), (LayerKind.FULL, 12))
    chunked_blocks = math.ceil((8192 + batched) / 16)
    assert layout.blocks_per_request == 262144 // 16 + 3 * chunked_blocks
    # so a long-context request costs far fewer blocks than under 0.11, and more of them fit
    older = replica_memory(facts_of(SCOUT), _settings(262144, batched), lookup("H100"), profile_for("0.11.0"))
    assert memory.max_concurrency > 3 * older.max_concurrency


def test_short_contexts_charge_the_chunked_layers_the_whole_request() -> None:
    memory = replica_memory(facts_of(SCOUT), _settings(4096), lookup("H100"), profile_for("0.19.0"))
    assert memory.binding.layout.blocks_per_request == 4 * (4096 // 16)


def _scout_config() -> dict[str, Any]:
    config = catalog.lookup(SCOUT)
    assert config is not None
    return dict(config)


def test_declared_no_rope_layers_are_read() -> None:
    config = _scout_config()
    text = dict(config["text_config"])
    text["no_rope_layers"] = [0 if i < 24 else 1 for i in range(48)]
    config["text_config"] = text
    assert parse(config).chunked_layers == frozenset(range(24, 48))


def test_no_rope_layers_of_the_wrong_length_are_refused() -> None:
    config = _scout_config()
    config["text_config"] = {**config["text_config"], "no_rope_layers": [1, 0]}
    with pytest.raises(ModelConfigError) as error:
        parse(config)
    assert error.value.field.endswith("no_rope_layers")
