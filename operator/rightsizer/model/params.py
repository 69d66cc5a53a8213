"""Parameter inventory: every weight tensor group of a model, with how vLLM shards and places it.

From the inventory follow both the exact parameter count (pinned against the published totals in tests) and the
weight bytes of each tensor/pipeline-parallel rank, for any quantization format.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from rightsizer.model.config import LayerKind, ModelFacts

VOCAB_PADDING = 64  # vLLM pads the vocabulary to a multiple of 64 before sharding it (DEFAULT_VOCAB_PADDING_SIZE)


class Sharding(StrEnum):
    COLUMN = "column"  # split across TP ranks (output dim, or input dim for row-parallel weights)
    KV_HEADS = "kv_heads"  # split by KV head; replicated once TP exceeds the KV head count
    VOCAB = "vocab"  # padded vocabulary split across TP ranks
    REPLICATED = "replicated"  # every TP rank holds a full copy (norms, routers, row-parallel biases)


class Stage(StrEnum):
    FIRST = "first"  # the embedding lives on the first pipeline stage
    LAST = "last"  # final norm and LM head live on the last pipeline stage
    LAYER = "layer"  # belongs to decoder layer `layer`


@dataclass(frozen=True)
class ParamGroup:
    module: str  # dotted module name as in the checkpoint, for quantization ignore lists (lm_head, mlp.gate)
    count: int
    sharding: Sharding
    stage: Stage
    layer: int = -1
    quantizable: bool = False  # a linear layer a weight-quantization method stores in its own format
    is_expert: bool = False
    outputs: int = 0  # output rows summed over the group's linear layers (per-channel scales)
    inputs: int = 0  # input columns summed over the group's linear layers (GPTQ act-order g_idx)
    experts: int = 0  # routed experts the group holds one slice of each (weights, biases): what EP divides


def _linear(
    module: str, shapes: list[tuple[int, int]], sharding: Sharding, layer: int, *, copies: int = 1, expert: bool = False
) -> ParamGroup:
    """Linear layers of (in, out) shapes, `copies` times (experts): a group a quantization method stores."""
    count = copies * sum(i * o for i, o in shapes)
    outputs = copies * sum(o for _, o in shapes)
    inputs = copies * sum(i for i, _ in shapes)
    return ParamGroup(
        module, count, sharding, Stage.LAYER, layer, True, expert, outputs, inputs, copies if expert else 0
    )


def padded_vocab(vocab_size: int) -> int:
    return math.ceil(vocab_size / VOCAB_PADDING) * VOCAB_PADDING


def _attention_groups(f: ModelFacts, layer: int) -> Iterator[ParamGroup]:
    a, h = f.attention, f.hidden_size
    if a.mla is not None:
        yield from _mla_groups(f, layer)
        return
    q_out, kv_out = a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim
    yield _linear("self_attn.q_proj", [(h, q_out)], Sharding.COLUMN, layer)
    yield _linear("self_attn.k_proj", [(h, kv_out), (h, kv_out)], Sharding.KV_HEADS, layer)
    yield _linear("self_attn.o_proj", [(q_out, h)], Sharding.COLUMN, layer)
    if a.qkv_bias:
        yield ParamGroup("self_attn.q_proj.bias", q_out, Sharding.COLUMN, Stage.LAYER, layer)
        yield ParamGroup("self_attn.k_proj.bias", 2 * kv_out, Sharding.KV_HEADS, Stage.LAYER, layer)
    if a.o_bias:
        yield ParamGroup("self_attn.o_proj.bias", h, Sharding.REPLICATED, Stage.LAYER, layer)
    if a.qk_norm_params:
        sharding = Sharding.COLUMN if a.qk_norm_sharded else Sharding.REPLICATED
        yield ParamGroup("self_attn.qk_norm", a.qk_norm_params, sharding, Stage.LAYER, layer)
    if a.sinks:
        yield ParamGroup("self_attn.sinks", a.num_heads, Sharding.COLUMN, Stage.LAYER, layer)


def _mla_groups(f: ModelFacts, layer: int) -> Iterator[ParamGroup]:
    """DeepSeek-V2/V3 attention. The low-rank down projections are replicated in vLLM; up projections split."""
    m, h, heads = f.attention.mla, f.hidden_size, f.attention.num_heads
    assert m is not None
    qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
    if m.q_lora_rank:
        yield _linear("self_attn.q_a_proj", [(h, m.q_lora_rank)], Sharding.REPLICATED, layer)
        yield ParamGroup("self_attn.q_a_layernorm", m.q_lora_rank, Sharding.REPLICATED, Stage.LAYER, layer)
        yield _linear("self_attn.q_b_proj", [(m.q_lora_rank, heads * qk_head)], Sharding.COLUMN, layer)
    else:
        yield _linear("self_attn.q_proj", [(h, heads * qk_head)], Sharding.COLUMN, layer)
    kv_a = (h, m.kv_lora_rank + m.qk_rope_head_dim)
    yield _linear("self_attn.kv_a_proj_with_mqa", [kv_a], Sharding.REPLICATED, layer)
    yield ParamGroup("self_attn.kv_a_layernorm", m.kv_lora_rank, Sharding.REPLICATED, Stage.LAYER, layer)
    kv_b = (m.kv_lora_rank, heads * (m.qk_nope_head_dim + m.v_head_dim))
    yield _linear("self_attn.kv_b_proj", [kv_b], Sharding.COLUMN, layer)
    yield _linear("self_attn.o_proj", [(heads * m.v_head_dim, h)], Sharding.COLUMN, layer)


def _linear_attention_groups(f: ModelFacts, layer: int) -> Iterator[ParamGroup]:
    """Qwen3-Next Gated DeltaNet layer."""
    la, h = f.linear_attention, f.hidden_size
    assert la is not None
    k_dim, v_dim = la.num_key_heads * la.key_head_dim, la.num_value_heads * la.value_head_dim
    yield _linear("linear_attn.in_proj_qkvz", [(h, 2 * k_dim + 2 * v_dim)], Sharding.COLUMN, layer)
    yield _linear("linear_attn.in_proj_ba", [(h, 2 * la.num_value_heads)], Sharding.COLUMN, layer)
    conv = (2 * k_dim + v_dim) * la.conv_kernel
    yield ParamGroup("linear_attn.conv1d", conv, Sharding.COLUMN, Stage.LAYER, layer)
    yield ParamGroup("linear_attn.dt_bias_a_log", 2 * la.num_value_heads, Sharding.COLUMN, Stage.LAYER, layer)
    yield ParamGroup("linear_attn.norm", la.value_head_dim, Sharding.REPLICATED, Stage.LAYER, layer)
    yield _linear("linear_attn.out_proj", [(v_dim, h)], Sharding.COLUMN, layer)


def _gated_attention_groups(f: ModelFacts, layer: int) -> Iterator[ParamGroup]:
    """Qwen3-Next full-attention layers also project a per-head output gate (q_proj is twice as wide)."""
    a, h = f.attention, f.hidden_size
    yield _linear("self_attn.q_gate", [(h, a.num_heads * a.head_dim)], Sharding.COLUMN, layer)


def _mlp_groups(f: ModelFacts, layer: int) -> Iterator[ParamGroup]:
    h, moe = f.hidden_size, f.moe
    if moe is None or layer in moe.dense_layers:
        inter = f.intermediate_size
        if not f.mlp_gated:
            # Phi's ungated MLP: fc1 (column-parallel) and fc2 (row-parallel), two matrices, not three
            # (PhiMLP, vllm/model_executor/models/phi.py@v0.19.0:152-163).
            yield _linear("mlp.fc1", [(h, inter)], Sharding.COLUMN, layer)
            yield _linear("mlp.fc2", [(inter, h)], Sharding.COLUMN, layer)
            if f.mlp_bias:
                yield ParamGroup("mlp.fc1.bias", inter, Sharding.COLUMN, Stage.LAYER, layer)
                yield ParamGroup("mlp.fc2.bias", h, Sharding.REPLICATED, Stage.LAYER, layer)
            return
        yield _linear("mlp.gate_up_proj", [(h, inter), (h, inter)], Sharding.COLUMN, layer)
        yield _linear("mlp.down_proj", [(inter, h)], Sharding.COLUMN, layer)
        if f.mlp_bias:
            yield ParamGroup("mlp.gate_up_proj.bias", 2 * inter, Sharding.COLUMN, Stage.LAYER, layer)
            yield ParamGroup("mlp.down_proj.bias", h, Sharding.REPLICATED, Stage.LAYER, layer)
        return
    e, inter = moe.num_experts, moe.expert_intermediate_size
    yield ParamGroup("mlp.gate", h * e, Sharding.REPLICATED, Stage.LAYER, layer)
    if moe.router_bias:
        yield ParamGroup("mlp.gate.bias", e, Sharding.REPLICATED, Stage.LAYER, layer)
    if moe.routing_bias:
        yield ParamGroup("mlp.gate.e_score_correction_bias", e, Sharding.REPLICATED, Stage.LAYER, layer)
    expert_shapes = [(h, inter), (h, inter), (inter, h)]
    yield _linear("mlp.experts", expert_shapes, Sharding.COLUMN, layer, copies=e, expert=True)
    if moe.expert_bias:
        yield ParamGroup("mlp.experts.gate_up_bias", e * 2 * inter, Sharding.COLUMN, Stage.LAYER, layer, experts=e)
        yield ParamGroup("mlp.experts.down_bias", e * h, Sharding.REPLICATED, Stage.LAYER, layer, experts=e)
    if moe.shared_intermediate_size:
        shared = moe.shared_intermediate_size
        yield _linear("mlp.shared_experts", [(h, shared), (h, shared), (shared, h)], Sharding.COLUMN, layer)
        if moe.shared_expert_gate:
            yield ParamGroup("mlp.shared_expert_gate", h, Sharding.REPLICATED, Stage.LAYER, layer)


@cache
def inventory(f: ModelFacts) -> tuple[ParamGroup, ...]:
    """Every parameter group of the model, in checkpoint order (computed once per model)."""
    h = f.hidden_size
    groups = [ParamGroup("embed_tokens", f.vocab_size * h, Sharding.VOCAB, Stage.FIRST)]
    for layer, kind in enumerate(f.layer_kinds):
        if kind == LayerKind.LINEAR:
            groups.extend(_linear_attention_groups(f, layer))
        else:
            groups.extend(_attention_groups(f, layer))
            if f.model_type == "qwen3_next":
                groups.extend(_gated_attention_groups(f, layer))
        groups.extend(_mlp_groups(f, layer))
        norm = f.norms_per_layer * h * (2 if f.norm_bias else 1)
        groups.append(ParamGroup("layernorm", norm, Sharding.REPLICATED, Stage.LAYER, layer))
    groups.append(ParamGroup("norm", h * (2 if f.norm_bias else 1), Sharding.REPLICATED, Stage.LAST))
    if not f.tie_word_embeddings:
        groups.append(ParamGroup("lm_head", f.vocab_size * h, Sharding.VOCAB, Stage.LAST))
    if f.lm_head_bias:  # one bias per vocabulary row, split across TP ranks with the head
        groups.append(ParamGroup("lm_head.bias", f.vocab_size, Sharding.COLUMN, Stage.LAST))
    if f.vision is not None:
        # vLLM builds the encoder on the first pipeline stage, its linear layers TP-sharded like the text model's.
        groups.append(ParamGroup("vision_tower", f.vision.parameters, Sharding.COLUMN, Stage.FIRST))
    return tuple(groups)


def total_parameters(f: ModelFacts) -> int:
    return sum(g.count for g in inventory(f))


def nextn_groups(f: ModelFacts) -> Iterator[ParamGroup]:
    """The multi-token-prediction layers a DeepSeek-V3-style checkpoint stores after its decoder layers
    (num_nextn_predict_layers), as vLLM's deepseek_mtp.py and glm4_moe_mtp.py build them: a full decoder layer (an
    MoE layer, its index being past first_k_dense_replace), enorm and hnorm, eh_proj (2 x hidden -> hidden),
    shared_head.norm, and the checkpoint's own copies of embed_tokens and shared_head.head for that layer. vLLM
    builds them only for MTP speculative decoding, so they are not in the inventory that sizing reads."""
    h, rows = f.hidden_size, f.vocab_size * f.hidden_size
    for layer in range(f.num_layers, f.num_layers + f.nextn_layers):
        yield from _attention_groups(f, layer)
        yield from _mlp_groups(f, layer)
        norm = f.norms_per_layer * h * (2 if f.norm_bias else 1)
        yield ParamGroup("layernorm", norm, Sharding.REPLICATED, Stage.LAYER, layer)
        yield ParamGroup("enorm_hnorm", 2 * h, Sharding.REPLICATED, Stage.LAYER, layer)
        yield _linear("eh_proj", [(2 * h, h)], Sharding.REPLICATED, layer)
        yield ParamGroup("shared_head.norm", h, Sharding.REPLICATED, Stage.LAYER, layer)
        yield ParamGroup("embed_tokens", rows, Sharding.VOCAB, Stage.LAYER, layer)
        yield ParamGroup("shared_head.head", rows, Sharding.VOCAB, Stage.LAYER, layer)


def checkpoint_parameters(f: ModelFacts) -> int:
    """Every weight of the checkpoint, as the Hub's safetensors total counts it: what vLLM loads plus the MTP layers.
    Quantization scales are not weights and are left out (the Hub counts FP8's 128x128 block scales too, about one
    element in 16,384 more)."""
    return total_parameters(f) + sum(g.count for g in nextn_groups(f))


def active_count(g: ParamGroup, f: ModelFacts) -> int:
    """Elements of group `g` one token touches: a routed-expert group's share for the experts it is routed to."""
    if g.is_expert and f.moe is not None:
        return g.count * f.moe.experts_per_token // f.moe.num_experts
    return g.count


def active_parameters(f: ModelFacts) -> int:
    """Parameters touched per token: all but the experts a token is not routed to."""
    return sum(active_count(g, f) for g in inventory(f))


def experts_per_rank(num_experts: int, ep: int) -> int:
    """Routed experts on the busiest rank of an expert-parallel group of `ep` ranks. vLLM's determine_expert_map
    (vllm/model_executor/layers/fused_moe/layer.py@v0.19.0:66-118) gives every rank E // ep experts and one more to
    each of the first E % ep ranks; the busiest rank decides the engine's KV cache (the minimum over workers)."""
    return -(-num_experts // ep)


def per_rank_count(g: ParamGroup, f: ModelFacts, tp: int, expert_parallel: bool = False) -> float:
    """Elements of group `g` one TP rank holds. With expert parallelism (--enable-expert-parallel, EP = TP with
    one data-parallel rank) a rank holds whole experts, experts_per_rank of them, instead of a 1/TP slice of each:
    vLLM's FusedMoEParallelConfig.make (fused_moe/config.py@v0.19.0:1084-1130) then sets the MoE tp_size to 1."""
    if expert_parallel and g.experts and tp > 1:
        return g.count / g.experts * experts_per_rank(g.experts, tp)
    if g.sharding == Sharding.REPLICATED:
        return g.count
    if g.sharding == Sharding.COLUMN:
        return g.count / tp
    if g.sharding == Sharding.VOCAB:
        return padded_vocab(f.vocab_size) * f.hidden_size / tp
    heads = f.attention.num_kv_heads
    heads_per_rank = max(1, heads // tp)  # once TP exceeds the KV heads, each rank keeps one replicated head
    return g.count * heads_per_rank / heads


def pipeline_layers(num_layers: int, pp: int) -> list[range]:
    """Layer ranges per pipeline stage, as vLLM's get_pp_indices splits them: an even split, with the remainder
    spread over the stages before the last one (counting backwards from the second to last)."""
    per_stage = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        per_stage[-i] += 1
    ranges, start = [], 0
    for n in per_stage:
        ranges.append(range(start, start + n))
        start += n
    return ranges


@cache
def _by_placement(
    f: ModelFacts,
) -> tuple[tuple[ParamGroup, ...], tuple[tuple[ParamGroup, ...], ...], tuple[ParamGroup, ...]]:
    """The inventory split into (first-stage groups, groups of each layer, last-stage groups), once per model."""
    first: list[ParamGroup] = []
    last: list[ParamGroup] = []
    per_layer: list[list[ParamGroup]] = [[] for _ in range(f.num_layers)]
    for g in inventory(f):
        if g.stage == Stage.FIRST:
            first.append(g)
        elif g.stage == Stage.LAST:
            last.append(g)
        else:
            per_layer[g.layer].append(g)
    return tuple(first), tuple(tuple(groups) for groups in per_layer), tuple(last)


def groups_on_stage(f: ModelFacts, stage_index: int, pp: int, layers: range) -> Iterator[ParamGroup]:
    """Parameter groups a pipeline stage holds, in checkpoint order. (With tied embeddings the last stage also keeps
    its own LM-head copy: see tied_head_on_last_stage.)"""
    first, per_layer, last = _by_placement(f)
    if stage_index == 0:
        yield from first
    for layer in layers:
        yield from per_layer[layer]
    if stage_index == pp - 1:
        yield from last


def tied_head_on_last_stage(f: ModelFacts, pp: int) -> bool:
    """vLLM creates a separate LM head on the last stage when embeddings are tied but the stages differ."""
    return f.tie_word_embeddings and pp > 1


def placement_cache_clear() -> None:
    _by_placement.cache_clear()
