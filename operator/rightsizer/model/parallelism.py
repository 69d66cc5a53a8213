"""Which tensor/pipeline-parallel degrees vLLM accepts for a model, and why others are refused."""

from __future__ import annotations

from rightsizer.model.config import ModelFacts
from rightsizer.model.params import padded_vocab


def tensor_parallel_problems(f: ModelFacts, tp: int, *, expert_parallel: bool = False) -> list[str]:
    """Reasons vLLM would refuse --tensor-parallel-size `tp` for this model (with --enable-expert-parallel when
    `expert_parallel`); empty when it is accepted."""
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
    if f.moe is not None and not expert_parallel and f.moe.expert_intermediate_size % tp:
        problems.append(f"the expert width {f.moe.expert_intermediate_size} is not divisible by {tp}")
    la = f.linear_attention
    if la is not None and (la.num_key_heads % tp or la.num_value_heads % tp):
        problems.append(f"{la.num_key_heads}/{la.num_value_heads} linear-attention heads are not divisible by {tp}")
    if expert_parallel:
        problems += expert_parallel_problems(f, tp)
    return problems + block_quantization_problems(f, tp, expert_parallel=expert_parallel)


def expert_parallel_problems(f: ModelFacts, tp: int) -> list[str]:
    """Why --enable-expert-parallel does not apply: vLLM uses it only for MoE layers and only when there is more
    than one rank (FusedMoEParallelConfig.make, fused_moe/config.py@v0.19.0:1084-1087: use_ep needs dp × pcp × tp
    > 1), and determine_expert_map leaves ranks beyond the expert count with no expert at all."""
    if f.moe is None:
        return ["expert parallelism needs a mixture-of-experts model"]
    if tp < 2:
        return ["expert parallelism needs more than one GPU (TP > 1)"]
    if f.moe.num_experts < tp:
        return [f"{f.moe.num_experts} experts cannot be spread over {tp} expert-parallel ranks"]
    return []


def block_quantization_problems(f: ModelFacts, tp: int, *, expert_parallel: bool = False) -> list[str]:
    """The per-rank widths a block-quantized FP8 checkpoint (quantization_config.weight_block_size [block_n,
    block_k]) needs, as vLLM 0.19.0 checks them when it creates the weights:

    - fused MoE experts (Fp8MoEMethod.create_weights, vllm/model_executor/layers/quantization/fp8.py@v0.19.0:
      626-649; the compressed-tensors MoE method repeats it, compressed_tensors_moe.py@v0.19.0:729-749): the expert
      width on a rank (I / TP, or I itself under expert parallelism) must divide by block_n, and by block_k when
      TP > 1;
    - linear layers (validate_fp8_block_shape, quantization/utils/fp8_utils.py@v0.19.0:1425-1474, called from
      Fp8LinearMethod.create_weights, fp8.py@v0.19.0:341-351): a row-parallel layer's input width per rank must
      divide by block_k and a single column-parallel layer's output per rank by block_n, when TP > 1. Merged
      column layers (QKV, gate_up) whose parts do not divide are let through (ColumnParallelLinear.
      _maybe_allow_fp8_block_shape_mismatch, layers/linear.py@v0.19.0:502-521), so they are not checked here.
    """
    q = f.quantization
    if q is None or q.block is None:
        return []
    block_n, block_k = q.block
    problems = []

    def need(width: float, block: int, what: str) -> None:
        if width != int(width) or int(width) % block:
            shown = f"{int(width)}" if width == int(width) else f"{width:g}"
            problems.append(f"{what} per GPU ({shown}) is not a multiple of the FP8 weight block {block}")

    moe = f.moe
    if moe is not None and len(moe.dense_layers) < f.num_layers:
        width = moe.expert_intermediate_size / (1 if expert_parallel and tp > 1 else tp)
        need(width, block_n, "the expert width")
        if tp > 1 and width % block_n == 0:
            need(width, block_k, "the expert width")
    if tp == 1:
        return problems
    kept_attention = any("attn" in module for module in q.ignored_modules)
    a, m = f.attention, f.attention.mla
    if not kept_attention and m is not None:
        heads = a.num_heads / tp
        need(heads * (m.qk_nope_head_dim + m.qk_rope_head_dim), block_n, "the MLA query projection")
        need(heads * (m.qk_nope_head_dim + m.v_head_dim), block_n, "the MLA kv_b projection")
        need(heads * m.v_head_dim, block_k, "the attention output projection's input")
    elif not kept_attention:
        need(a.num_heads * a.head_dim / tp, block_k, "the attention output projection's input")
    if moe is None or moe.dense_layers:
        need(f.intermediate_size / tp, block_k, "the MLP down projection's input")
    if moe is not None and moe.shared_intermediate_size:
        # Shared experts stay tensor-parallel MLPs under expert parallelism too.
        need(moe.shared_intermediate_size / tp, block_k, "the shared-expert down projection's input")
    la = f.linear_attention
    if la is not None and not kept_attention:
        need(la.num_value_heads * la.value_head_dim / tp, block_k, "the linear-attention output projection's input")
    return problems


def valid_tensor_parallel_sizes(f: ModelFacts, limit: int) -> list[int]:
    return [tp for tp in range(1, limit + 1) if not tensor_parallel_problems(f, tp)]


def pipeline_parallel_problems(f: ModelFacts, pp: int) -> list[str]:
    if pp > f.num_layers:
        return [f"{pp} pipeline stages exceed the model's {f.num_layers} layers"]
    return []
