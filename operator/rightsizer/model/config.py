"""config.json -> ModelFacts: the architecture facts sizing needs, parsed the way vLLM reads them.

Pure: takes the config mapping (however it was obtained) and returns frozen facts or raises ModelConfigError that
names the missing key. Multimodal configs are read through their `text_config`, as vLLM's hf_text_config does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rightsizer.api.v1alpha1.sizingpolicy import WeightFormat
from rightsizer.errors import ModelConfigError
from rightsizer.model import architectures, limits
from rightsizer.model.checkpoint_quant import CheckpointQuantization, checkpoint_quantization
from rightsizer.model.limits import FIELD
from rightsizer.model.readers import bool_of, first_of, float_of, int_list_of, int_of, short, value_of
from rightsizer.model.vision import VisionFacts, vision_facts

__all__ = ["CheckpointQuantization", "LayerKind", "ModelFacts", "VisionFacts", "WeightFormat", "parse", "text_config"]


class LayerKind(StrEnum):
    FULL = "full_attention"
    SLIDING = "sliding_attention"
    LINEAR = "linear_attention"  # Gated DeltaNet / Mamba-style recurrent state: one block per request
    # Llama 4's chunked local attention. Never in ModelFacts.layer_kinds (which says how a layer computes: these
    # layers are FULL there); memory.kv_layout uses it for the KV groups of releases that keep them apart.
    CHUNKED = "chunked_local_attention"


@dataclass(frozen=True)
class MlaFacts:
    """Multi-head latent attention (DeepSeek-V2/V3): one latent vector per token per layer in the KV cache."""

    kv_lora_rank: int
    q_lora_rank: int | None
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class AttentionFacts:
    num_heads: int
    num_kv_heads: int
    head_dim: int
    qkv_bias: bool
    o_bias: bool
    qk_norm: bool  # RMSNorm weights on q and k (Qwen3, Gemma3 per head; MiniMax-M2 over all heads)
    sinks: bool  # learned attention sinks, one per head (gpt-oss)
    mla: MlaFacts | None = None
    qk_norm_params: int = 0  # elements of the q and k norm weights in one layer

    @property
    def qk_norm_sharded(self) -> bool:
        """Norms over all heads (MiniMax-M2's MiniMaxText01RMSNormTP) are split across TP ranks like the heads."""
        return self.qk_norm_params > 2 * self.head_dim


@dataclass(frozen=True)
class MoEFacts:
    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_intermediate_size: int  # all shared experts together; 0 when none
    shared_expert_gate: bool  # Qwen2-MoE: a sigmoid gate (hidden -> 1) on the shared expert
    router_bias: bool
    expert_bias: bool  # gpt-oss experts carry biases
    dense_layers: frozenset[int]  # layers with a dense MLP instead of experts (DeepSeek first_k_dense_replace)
    routing_bias: bool = False  # e_score_correction_bias, one per expert (DeepSeek-V3 noaux_tc, GLM-4.5, MiniMax-M2)


@dataclass(frozen=True)
class LinearAttentionFacts:
    """Gated DeltaNet (Qwen3-Next): recurrent state instead of a growing KV cache."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int


@dataclass(frozen=True)
class ModelFacts:
    architecture: str
    model_type: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    attention: AttentionFacts
    layer_kinds: tuple[LayerKind, ...]
    sliding_window: int | None
    tie_word_embeddings: bool
    norms_per_layer: int  # RMSNorm/LayerNorm weight vectors of size hidden in each decoder layer
    norm_bias: bool  # LayerNorm with bias
    mlp_bias: bool
    dtype: str  # torch dtype the checkpoint declares: bfloat16, float16, float32
    max_model_len_limit: int  # longest context vLLM accepts
    default_max_model_len: int  # what vLLM uses when --max-model-len is not given
    rope_cache_positions: int  # rows of the rotary cos/sin cache
    rotary_dim: int
    moe: MoEFacts | None = None
    linear_attention: LinearAttentionFacts | None = None
    quantization: CheckpointQuantization | None = None
    vision: VisionFacts | None = None  # the multimodal encoder vLLM loads beside the language model
    attention_chunk_size: int | None = None  # Llama 4: chunked local attention on the layers in chunked_layers
    chunked_layers: frozenset[int] = frozenset()
    mlp_gated: bool = True  # gate_up_proj + down_proj (SwiGLU); False: fc1 -> activation -> fc2 (Phi)
    lm_head_bias: bool = False  # a bias on the LM head (Phi)
    # DeepSeek-V3-style multi-token-prediction layers (num_nextn_predict_layers) the checkpoint stores after the
    # decoder layers. vLLM builds them only for MTP speculative decoding, so sizing leaves them out; they count in
    # the checkpoint's own total (params.checkpoint_parameters).
    nextn_layers: int = 0

    @property
    def is_mla(self) -> bool:
        return self.attention.mla is not None

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def layers_of(self, kind: LayerKind) -> int:
        return sum(1 for k in self.layer_kinds if k == kind)


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language-model part of a config (multimodal models nest it under text_config)."""
    nested = config.get("text_config")
    if isinstance(nested, Mapping):
        merged = dict(nested)
        for key in ("architectures", "quantization_config", "torch_dtype", "dtype", "tie_word_embeddings"):
            if key in config and key not in merged:
                merged[key] = config[key]
        return merged
    return config


_QWEN_FAMILY = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe")
# Phi-1/1.5/2: parallel attention and MLP blocks. Each layer has one LayerNorm whose output feeds both the attention
# and an ungated fc1 -> gelu -> fc2 MLP, added to the residual together (PhiLayer.forward,
# vllm/model_executor/models/phi.py@v0.19.0:182-203); every linear layer and the LM head carry biases.
PHI = "phi"


def _layer_kinds(cfg: Mapping[str, Any], model_type: str, num_layers: int) -> tuple[LayerKind, ...]:
    """Which attention each layer uses, as transformers' config classes compute it."""
    declared = cfg.get("layer_types")
    if isinstance(declared, list) and declared:
        if len(declared) != num_layers:
            raise ModelConfigError(
                f"{FIELD}.layer_types",
                f"has {len(declared)} entries for {num_layers} layers",
                "give one entry per layer (num_hidden_layers)",
            )
        mapping = {
            "full_attention": LayerKind.FULL,
            "sliding_attention": LayerKind.SLIDING,
            "linear_attention": LayerKind.LINEAR,
        }
        kinds = []
        for entry in declared:
            kind = mapping.get(entry) if isinstance(entry, str) else None
            if kind is None:
                raise ModelConfigError(
                    f"{FIELD}.layer_types",
                    f"unsupported layer type {short(entry)}",
                    "use full_attention, sliding_attention or linear_attention",
                )
            kinds.append(kind)
        return tuple(kinds)
    if model_type == "qwen3_next":
        interval = int_of(cfg, "full_attention_interval", default=4, high=limits.MAX_LAYERS)
        return tuple(LayerKind.FULL if (i + 1) % interval == 0 else LayerKind.LINEAR for i in range(num_layers))
    if model_type == "gemma2":
        return tuple(LayerKind.SLIDING if i % 2 == 0 else LayerKind.FULL for i in range(num_layers))
    if model_type in ("gemma3_text", "gemma3"):
        pattern = int_of(cfg, "sliding_window_pattern", default=6, high=limits.MAX_LAYERS)
        return tuple(LayerKind.FULL if (i + 1) % pattern == 0 else LayerKind.SLIDING for i in range(num_layers))
    if _uniform_sliding_window(cfg, model_type) is not None:
        return (LayerKind.SLIDING,) * num_layers
    return (LayerKind.FULL,) * num_layers


def _uniform_sliding_window(cfg: Mapping[str, Any], model_type: str) -> int | None:
    """vLLM applies config.sliding_window to every layer of a non-interleaved model (Mistral-7B-v0.1, Phi-3).
    Qwen configs carry a sliding_window but transformers drops it unless use_sliding_window is true."""
    window = cfg.get("sliding_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return None
    if model_type in _QWEN_FAMILY and not cfg.get("use_sliding_window", False):
        return None
    return window


def _rope_parameters(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if not isinstance(rope, Mapping):
        return None
    params = dict(rope)
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def _max_model_len(cfg: Mapping[str, Any], model_type: str) -> tuple[int, int]:
    """(limit, default) the way vLLM's _get_and_verify_max_len derives them from config.json alone."""
    keys = (
        "max_position_embeddings",
        "n_positions",
        "max_seq_len",
        "seq_length",
        "model_max_length",
        "max_target_positions",
        "max_sequence_length",
        "max_seq_length",
        "seq_len",
    )
    found = [int_of(cfg, k, high=limits.MAX_POSITIONS) for k in keys if cfg.get(k) is not None]
    derived: float = float(min(found)) if found else 2048.0  # vLLM assumes 2048 and warns
    rope = _rope_parameters(cfg)
    if rope is not None and "gemma3" not in model_type:
        rope_type = rope["rope_type"]
        if rope_type not in ("su", "longrope", "llama3", "default"):
            factor = float_of(rope, "factor", 1.0, 1e-6, 1024.0, base=f"{FIELD}.rope_scaling")
            if rope_type == "yarn":
                derived = float(
                    int_of(rope, "original_max_position_embeddings", default=int(derived), base=f"{FIELD}.rope_scaling")
                )
            derived *= factor
    if derived > limits.MAX_POSITIONS:
        raise ModelConfigError(
            f"{FIELD}.rope_scaling",
            f"scales the context to {int(derived)} positions, above {limits.MAX_POSITIONS}",
            "fix the rope factor in config.json",
        )
    limit = max(1, int(derived))
    default = limit
    if rope is not None and rope["rope_type"] == "longrope":
        # vLLM defaults LongRoPE models to their original context to avoid slow short sequences.
        default = min(limit, int_of(cfg, "original_max_position_embeddings", default=limit))
    return limit, default


def _qk_norm_params(cfg: Mapping[str, Any], model_type: str, heads: int, kv_heads: int, head_dim: int) -> int:
    """Elements of the q/k norm weights per layer, as vLLM's model files create them."""
    if model_type == "minimax_m2" and bool_of(cfg, "use_qk_norm", False):
        return (heads + kv_heads) * head_dim  # q_norm and k_norm over all heads (minimax_m2.py)
    if model_type in (
        "qwen3",
        "qwen3_moe",
        "qwen3_next",
        "qwen3_vl_text",
        "qwen3_vl_moe_text",
        "gemma3",
        "gemma3_text",
    ):
        return 2 * head_dim  # one RMSNorm of head_dim each, shared by the heads
    if model_type == "glm4_moe" and bool_of(cfg, "use_qk_norm", False):
        return 2 * head_dim
    return 0  # Llama 4's qk norm has no weight (RMSNorm(has_weight=False) in llama4.py)


def _attention(cfg: Mapping[str, Any], model_type: str, hidden: int) -> AttentionFacts:
    heads = int_of(cfg, "num_attention_heads", "n_head", "num_heads", high=limits.MAX_HEADS)
    kv_heads = int_of(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads, high=limits.MAX_HEADS)
    mla = None
    if value_of(cfg, "kv_lora_rank") is not None:
        q_rank = int_of(cfg, "q_lora_rank", default=0, low=0, high=limits.MAX_HIDDEN_SIZE)
        mla = MlaFacts(
            kv_lora_rank=int_of(cfg, "kv_lora_rank", high=limits.MAX_HIDDEN_SIZE),
            q_lora_rank=q_rank or None,
            qk_nope_head_dim=int_of(cfg, "qk_nope_head_dim", high=limits.MAX_HEAD_DIM),
            qk_rope_head_dim=int_of(cfg, "qk_rope_head_dim", high=limits.MAX_HEAD_DIM),
            v_head_dim=int_of(cfg, "v_head_dim", high=limits.MAX_HEAD_DIM),
        )
        head_dim = mla.kv_lora_rank + mla.qk_rope_head_dim  # what vLLM's get_head_size returns for MLA
        kv_heads = 1
    else:
        head_dim = int_of(cfg, "head_dim", default=0, low=0, high=limits.MAX_HEAD_DIM) or hidden // heads
        if kv_heads > heads or heads % kv_heads:
            # vLLM's attention layers assert num_heads % num_kv_heads == 0 (grouped-query attention).
            raise ModelConfigError(
                f"{FIELD}.num_key_value_heads",
                f"{kv_heads} KV heads do not divide {heads} attention heads",
                "fix config.json: num_attention_heads must be a multiple of num_key_value_heads",
            )
        if head_dim == 0 or head_dim % 8:
            # vLLM's attention kernels (FlashAttention's supports_head_size: head_size % 8 == 0) refuse it.
            raise ModelConfigError(
                f"{FIELD}.head_dim",
                f"a head size of {head_dim} is not a multiple of 8, which vLLM's attention kernels need",
                "fix head_dim (or hidden_size / num_attention_heads) in config.json",
            )
    qkv_bias = bool_of(cfg, "attention_bias", model_type in ("qwen2", "qwen2_moe", "qwen2_5_vl", "qwen2_5_vl_text"))
    o_bias = model_type == "gpt_oss" or bool_of(cfg, "attention_out_bias", False)
    if model_type == PHI:
        # QKVParallelLinear(bias=True) and RowParallelLinear's default bias=True for `dense`
        # (vllm/model_executor/models/phi.py@v0.19.0:95-108, layers/linear.py@v0.19.0:1403).
        qkv_bias = o_bias = True
    if model_type == "gpt_oss":
        qkv_bias = True
    qk_params = _qk_norm_params(cfg, model_type, heads, kv_heads, head_dim) if mla is None else 0
    return AttentionFacts(
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        qk_norm=qk_params > 0,
        sinks=model_type == "gpt_oss",
        mla=mla,
        qk_norm_params=qk_params,
    )


def _moe_layers(cfg: Mapping[str, Any], model_type: str, num_layers: int) -> frozenset[int]:
    """Layers with a dense MLP instead of experts."""
    dense: set[int] = set()
    if model_type == "llama4_text":
        # llama4.py: a layer is MoE when interleave_moe_layer_step > 0 and (layer + 1) % step == 0.
        step = int_of(cfg, "interleave_moe_layer_step", default=1, low=0, high=limits.MAX_LAYERS)
        return frozenset(i for i in range(num_layers) if step == 0 or (i + 1) % step != 0)
    first_dense = int_of(cfg, "first_k_dense_replace", default=0, low=0, high=limits.MAX_LAYERS)
    dense.update(range(min(first_dense, num_layers)))
    step = int_of(cfg, "decoder_sparse_step", "moe_layer_freq", default=1, high=limits.MAX_LAYERS)
    if step > 1:
        dense.update(i for i in range(num_layers) if (i + 1) % step != 0)
    dense.update(i for i in int_list_of(cfg, "mlp_only_layers", 0, limits.MAX_LAYERS) if i < num_layers)
    return frozenset(dense)


def _moe(cfg: Mapping[str, Any], model_type: str, num_layers: int) -> MoEFacts | None:
    key, experts = first_of(cfg, ("num_local_experts", "num_experts", "n_routed_experts"))
    if experts is None or experts == 0:
        return None
    experts = int_of(cfg, key, high=limits.MAX_EXPERTS)
    per_token = int_of(cfg, "num_experts_per_tok", "experts_per_token", "moe_top_k", high=limits.MAX_EXPERTS)
    if per_token > experts:
        raise ModelConfigError(
            f"{FIELD}.num_experts_per_tok",
            f"routes each token to {per_token} experts but the model has {experts}",
            "fix config.json: top-k cannot exceed the expert count",
        )
    expert_inter = int_of(cfg, "moe_intermediate_size", "intermediate_size", high=limits.MAX_INTERMEDIATE_SIZE)
    shared = 0
    if model_type == "llama4_text":
        shared = expert_inter  # one shared expert of the expert width in every MoE layer (Llama4MoE.shared_expert)
    elif value_of(cfg, "n_shared_experts"):
        shared = int_of(cfg, "n_shared_experts", low=0, high=limits.MAX_EXPERTS) * expert_inter
    elif value_of(cfg, "shared_expert_intermediate_size"):
        shared = int_of(cfg, "shared_expert_intermediate_size", low=0, high=limits.MAX_INTERMEDIATE_SIZE)
    routing_bias = (
        model_type in ("deepseek_v3", "glm4_moe")
        or bool_of(cfg, "use_routing_bias", False)
        or cfg.get("topk_method") == "noaux_tc"
    )
    return MoEFacts(
        num_experts=experts,
        experts_per_token=per_token,
        expert_intermediate_size=expert_inter,
        shared_intermediate_size=shared,
        shared_expert_gate=model_type in ("qwen2_moe", "qwen3_next") and shared > 0,
        router_bias=model_type == "gpt_oss",
        expert_bias=model_type == "gpt_oss",
        dense_layers=_moe_layers(cfg, model_type, num_layers),
        routing_bias=routing_bias,
    )


def _linear_attention(cfg: Mapping[str, Any]) -> LinearAttentionFacts:
    return LinearAttentionFacts(
        num_key_heads=int_of(cfg, "linear_num_key_heads", high=limits.MAX_HEADS),
        num_value_heads=int_of(cfg, "linear_num_value_heads", high=limits.MAX_HEADS),
        key_head_dim=int_of(cfg, "linear_key_head_dim", high=limits.MAX_HEAD_DIM),
        value_head_dim=int_of(cfg, "linear_value_head_dim", high=limits.MAX_HEAD_DIM),
        conv_kernel=int_of(cfg, "linear_conv_kernel_dim", high=64),
    )


def _dtype(cfg: Mapping[str, Any]) -> str:
    raw = str(value_of(cfg, "torch_dtype", "dtype", default="bfloat16")).replace("torch.", "")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32", "fp32": "float32"}
    dtype = aliases.get(raw, raw)
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelConfigError(
            f"{FIELD}.torch_dtype", f"unsupported dtype {short(raw)}", "use bfloat16, float16 or float32"
        )
    return dtype


_PARTIAL_ROTARY_KEYS = ("partial_rotary_factor", "rotary_pct", "rotary_emb_fraction")


def _rotary(cfg: Mapping[str, Any], attention: AttentionFacts, limit: int) -> tuple[int, int]:
    """(rows, rotary dim) of the rotary cos/sin cache vLLM allocates once per rank."""
    if attention.mla is not None:
        return limit, attention.mla.qk_rope_head_dim
    if cfg.get("rotary_dim") is not None:  # MiniMax-M2 names its partial rotary width directly
        return limit, int_of(cfg, "rotary_dim", high=attention.head_dim)
    # vLLM's get_rope sizes the cache (max_position, int(head_size * partial_rotary_factor)), the factor read from
    # rope_parameters (vllm/model_executor/layers/rotary_embedding/__init__.py@v0.19.0:62-66), where
    # patch_rope_parameters puts a top-level partial_rotary_factor, rotary_pct or rotary_emb_fraction
    # (vllm/transformers_utils/config.py@v0.19.0:385-403); Qwen3.5 nests it in rope_parameters only.
    key, declared = first_of(cfg, _PARTIAL_ROTARY_KEYS)
    if declared is not None:
        factor = float_of(cfg, key, 1.0, 0.0, 1.0)
    else:
        rope = _rope_parameters(cfg) or {}
        factor = float_of(rope, "partial_rotary_factor", 1.0, 0.0, 1.0, base=f"{FIELD}.rope_parameters")
    return limit, int(attention.head_dim * factor)


def _gemma3_rope_rows(cfg: Mapping[str, Any], positions: int, sliding: bool) -> int:
    """Rows of Gemma 3's two rotary caches. gemma3.py builds the global layers' rope from config.json's rope
    settings and the sliding layers' as a plain rope at rope_local_base_freq
    (vllm/model_executor/models/gemma3.py@v0.19.0:167-185); get_rope keeps one cache per distinct setting
    (rotary_embedding/__init__.py@v0.19.0:68-78), so there are two. A "linear" rope is a
    LinearScalingRotaryEmbedding, whose cache holds max_position × factor rows (linear_scaling_rope.py@v0.19.0
    _compute_cos_sin_cache): for the published Gemma 3 4B-27B (factor 8, 131,072 positions) 1,048,576 rows, 0.50 GiB
    at head_dim 256, beside the local cache's 131,072. Gemma 3's max_model_len ignores the factor (_max_model_len)."""
    rope = _rope_parameters(cfg) or {}
    full = rope.get("full_attention")
    if isinstance(full, Mapping):  # transformers v5: one rope_parameters entry per layer type
        rope = dict(full)
        rope.setdefault("rope_type", rope.get("type", "default"))
    factor = 1.0
    if rope.get("rope_type") == "linear":
        factor = float_of(rope, "factor", 1.0, 1e-6, 1024.0, base=f"{FIELD}.rope_scaling")
    global_rows = int(positions * factor)
    if global_rows > limits.MAX_POSITIONS:
        raise ModelConfigError(
            f"{FIELD}.rope_scaling",
            f"scales the rotary cache to {global_rows} positions, above {limits.MAX_POSITIONS}",
            "fix the rope factor in config.json",
        )
    return global_rows + (positions if sliding else 0)


def _chunked_attention(cfg: Mapping[str, Any], model_type: str, num_layers: int) -> tuple[int | None, frozenset[int]]:
    """(attention_chunk_size, layers that use it). vLLM's llama4.py builds ChunkedLocalAttention on every layer with
    rotary embeddings (no_rope_layers[i] == 1) when attention_chunk_size is set; the NoPE layers attend globally.
    transformers' Llama4TextConfig defaults no_rope_layers to every no_rope_layer_interval-th (4th) layer NoPE."""
    if model_type != "llama4_text" or value_of(cfg, "attention_chunk_size") is None:
        return None, frozenset()
    chunk = int_of(cfg, "attention_chunk_size", high=limits.MAX_POSITIONS)
    declared = cfg.get("no_rope_layers")
    if isinstance(declared, list) and declared:
        flags = int_list_of(cfg, "no_rope_layers", 0, 1)
        if len(flags) != num_layers:
            raise ModelConfigError(
                f"{FIELD}.no_rope_layers",
                f"has {len(flags)} entries for {num_layers} layers",
                "give one entry per layer (num_hidden_layers)",
            )
    else:
        interval = int_of(cfg, "no_rope_layer_interval", default=4, high=limits.MAX_LAYERS)
        flags = [int((i + 1) % interval != 0) for i in range(num_layers)]
    return chunk, frozenset(i for i, rope in enumerate(flags) if rope)


def _intermediate_size(cfg: Mapping[str, Any], model_type: str, hidden: int) -> int:
    if model_type == PHI:
        # PhiMLP ignores intermediate_size: fc1 is n_inner wide, else 4 x hidden_size (phi.py@v0.19.0:149-150).
        return int_of(cfg, "n_inner", default=4 * hidden, high=limits.MAX_INTERMEDIATE_SIZE)
    if model_type == "llama4_text":
        # Llama 4's dense layers use intermediate_size_mlp; intermediate_size is the expert width.
        return int_of(cfg, "intermediate_size_mlp", high=limits.MAX_INTERMEDIATE_SIZE)
    if not architectures.is_known(model_type) and first_of(cfg, ("intermediate_size", "ffn_dim"))[1] is None:
        # 4 x hidden_size is GPT-2's convention: a guess for an architecture nobody has checked.
        raise ModelConfigError(
            f"{FIELD}.intermediate_size",
            f"is missing, and model_type {short(model_type or '(unset)')} is not an architecture rightsizer knows, "
            "so its MLP width cannot be assumed",
            "supply the model's full config.json",
        )
    return int_of(cfg, "intermediate_size", "ffn_dim", default=4 * hidden, high=limits.MAX_INTERMEDIATE_SIZE)


def parse(config: Mapping[str, Any]) -> ModelFacts:
    """Parse a config.json mapping. Raises ModelConfigError naming the offending key.

    Sizes are bounded (model/limits.py) before anything is built per layer, so every input costs little."""
    if not isinstance(config, Mapping) or not config:
        raise ModelConfigError(FIELD, "config.json is empty or not a JSON object", "supply the model's config.json")
    limits.check_shape(config)
    cfg = text_config(config)
    architectures = cfg.get("architectures") or config.get("architectures") or []
    if not isinstance(architectures, list):
        architectures = []
    architecture = str(architectures[0])[:200] if architectures else str(cfg.get("model_type", "unknown"))[:200]
    model_type = str(cfg.get("model_type", "")).lower()[:100]
    hidden = int_of(cfg, "hidden_size", "n_embd", "d_model", high=limits.MAX_HIDDEN_SIZE)
    layers = int_of(cfg, "num_hidden_layers", "n_layer", "num_layers", high=limits.MAX_LAYERS)
    vocab = int_of(cfg, "vocab_size", "padded_vocab_size", high=limits.MAX_VOCAB_SIZE)
    attention = _attention(cfg, model_type, hidden)
    kinds = _layer_kinds(cfg, model_type, layers)
    window = _uniform_sliding_window(cfg, "") if LayerKind.SLIDING in kinds else None
    limit, default = _max_model_len(cfg, model_type)
    rope_rows, rotary_dim = _rotary(cfg, attention, limit)
    if model_type in ("gemma3", "gemma3_text"):
        rope_rows = _gemma3_rope_rows(cfg, limit, LayerKind.SLIDING in kinds)
    gemma = model_type.startswith("gemma")
    phi = model_type == PHI
    chunk, chunked_layers = _chunked_attention(cfg, model_type, layers)
    return ModelFacts(
        architecture=architecture,
        model_type=model_type,
        num_layers=layers,
        hidden_size=hidden,
        intermediate_size=_intermediate_size(cfg, model_type, hidden),
        vocab_size=vocab,
        attention=attention,
        layer_kinds=kinds,
        sliding_window=window,
        tie_word_embeddings=bool_of(cfg, "tie_word_embeddings", gemma),
        norms_per_layer=4 if gemma else 1 if phi else 2,
        norm_bias=model_type in ("phi", "gpt2", "falcon"),
        mlp_bias=phi or bool_of(cfg, "mlp_bias", False),  # fc1 and fc2 keep the parallel linears' default bias
        dtype=_dtype(cfg),
        max_model_len_limit=limit,
        default_max_model_len=default,
        rope_cache_positions=rope_rows,
        rotary_dim=rotary_dim,
        moe=_moe(cfg, model_type, layers),
        linear_attention=_linear_attention(cfg) if LayerKind.LINEAR in kinds else None,
        quantization=checkpoint_quantization(cfg),
        vision=vision_facts(config, hidden),
        attention_chunk_size=chunk,
        chunked_layers=chunked_layers,
        mlp_gated=not phi,
        lm_head_bias=phi,  # ParallelLMHead(bias=True) (phi.py@v0.19.0:326-331)
        nextn_layers=int_of(cfg, "num_nextn_predict_layers", default=0, low=0, high=limits.MAX_LAYERS),
    )
