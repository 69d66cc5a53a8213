"""Which tensor/pipeline-parallel degrees vLLM accepts for a model, and why others are refused."""

from __future__ import annotations

from rightsizer.model.config import ModelFacts
from rightsizer.model.params import padded_vocab


def tensor_parallel_problems(f: ModelFacts, tp: int) -> list[str]:
    """Reasons vLLM would refuse --tensor-parallel-size `tp` for this model; empty when it is accepted."""
    problems = []
    a = f.attention
    if a.num_heads % tp:
        problems.append(f"{a.num_heads} attention heads are not divisible by {tp}")
    if a.mla is None and a.num_kv_heads % tp and tp % a.num_kv_heads:
        problems.append(f"{a.num_kv_heads} KV heads neither divide nor are divided by {tp}")
    vocab = padded_vocab(f.vocab_size)
    if vocab % tp:
        problems.append(f"the padded vocabulary ({vocab}) is not divisible by {tp}")
    if (f.moe is None or f.moe.dense_layers) and f.intermediate_size % tp:
        problems.append(f"the MLP width {f.intermediate_size} is not divisible by {tp}")
    if f.moe is not None and f.moe.expert_intermediate_size % tp:
        problems.append(f"the expert width {f.moe.expert_intermediate_size} is not divisible by {tp}")
    la = f.linear_attention
    if la is not None and (la.num_key_heads % tp or la.num_value_heads % tp):
        problems.append(f"{la.num_key_heads}/{la.num_value_heads} linear-attention heads are not divisible by {tp}")
    return problems


def valid_tensor_parallel_sizes(f: ModelFacts, limit: int) -> list[int]:
    return [tp for tp in range(1, limit + 1) if not tensor_parallel_problems(f, tp)]


def pipeline_parallel_problems(f: ModelFacts, pp: int) -> list[str]:
    if pp > f.num_layers:
        return [f"{pp} pipeline stages exceed the model's {f.num_layers} layers"]
    return []
