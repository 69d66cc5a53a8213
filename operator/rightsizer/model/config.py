"""config.json -> ModelFacts: the architecture facts sizing needs, parsed the way vLLM reads them.

Pure: takes the config mapping (however it was obtained) and returns frozen facts or raises ModelConfigError that
names the missing key. Multimodal configs are read through their `text_config`, as vLLM's hf_text_config does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rightsizer.errors import ModelConfigError

FIELD = "spec.model.config"


class LayerKind(StrEnum):
    FULL = "full_attention"
    SLIDING = "sliding_attention"
    LINEAR = "linear_attention"  # Gated DeltaNet / Mamba-style recurrent state: one block per request


class QuantFormat(StrEnum):
    """Weight storage formats with distinct bytes per parameter."""

    NONE = "none"
    FP8 = "fp8"
    W8A8 = "w8a8"
    W4A16_GPTQ = "w4a16-gptq"
    W4A16_AWQ = "w4a16-awq"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"


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
    qk_norm: bool  # per-head RMSNorm on q and k (Qwen3, Gemma3)
    sinks: bool  # learned attention sinks, one per head (gpt-oss)
    mla: MlaFacts | None = None


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


@dataclass(frozen=True)
class LinearAttentionFacts:
    """Gated DeltaNet (Qwen3-Next): recurrent state instead of a growing KV cache."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int


@dataclass(frozen=True)
class CheckpointQuantization:
    """What the checkpoint's quantization_config says."""

    method: str  # vLLM's name: fp8, compressed-tensors, gptq, awq, mxfp4, modelopt, ...
    format: QuantFormat
    group_size: int | None
    ignored_modules: tuple[str, ...]  # modules left unquantized, e.g. lm_head


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

    @property
    def is_mla(self) -> bool:
        return self.attention.mla is not None

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def layers_of(self, kind: LayerKind) -> int:
        return sum(1 for k in self.layer_kinds if k == kind)


# --- helpers -----------------------------------------------------------------------------------------------------


def _get(cfg: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    return default


def _require_int(cfg: Mapping[str, Any], *keys: str) -> int:
    value = _get(cfg, *keys)
    if value is None:
        raise ModelConfigError(
            FIELD, f"config.json has no {' or '.join(repr(k) for k in keys)}", "supply the model's full config.json"
        )
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelConfigError(FIELD, f"config.json key {keys[0]!r} must be a positive integer, got {value!r}")
    return value


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


def _layer_kinds(cfg: Mapping[str, Any], model_type: str, num_layers: int) -> tuple[LayerKind, ...]:
    """Which attention each layer uses, as transformers' config classes compute it."""
    declared = cfg.get("layer_types")
    if isinstance(declared, list) and declared:
        if len(declared) != num_layers:
            raise ModelConfigError(FIELD, f"layer_types has {len(declared)} entries for {num_layers} layers")
        mapping = {
            "full_attention": LayerKind.FULL,
            "sliding_attention": LayerKind.SLIDING,
            "linear_attention": LayerKind.LINEAR,
        }
        try:
            return tuple(mapping[str(t)] for t in declared)
        except KeyError as err:
            raise ModelConfigError(FIELD, f"unsupported layer type {err.args[0]!r} in layer_types") from None
    if model_type == "qwen3_next":
        interval = int(cfg.get("full_attention_interval", 4))
        return tuple(LayerKind.FULL if (i + 1) % interval == 0 else LayerKind.LINEAR for i in range(num_layers))
    if model_type == "gemma2":
        return tuple(LayerKind.SLIDING if i % 2 == 0 else LayerKind.FULL for i in range(num_layers))
    if model_type in ("gemma3_text", "gemma3"):
        pattern = int(cfg.get("sliding_window_pattern", 6))
        return tuple(LayerKind.FULL if (i + 1) % pattern == 0 else LayerKind.SLIDING for i in range(num_layers))
    if _uniform_sliding_window(cfg, model_type) is not None:
        return (LayerKind.SLIDING,) * num_layers
    return (LayerKind.FULL,) * num_layers


def _uniform_sliding_window(cfg: Mapping[str, Any], model_type: str) -> int | None:
    """vLLM applies config.sliding_window to every layer of a non-interleaved model (Mistral-7B-v0.1, Phi-3).
    Qwen configs carry a sliding_window but transformers drops it unless use_sliding_window is true."""
    window = cfg.get("sliding_window")
    if not isinstance(window, int) or window <= 0:
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
    found = [int(cfg[k]) for k in keys if isinstance(cfg.get(k), int)]
    derived: float = float(min(found)) if found else 2048.0  # vLLM assumes 2048 and warns
    rope = _rope_parameters(cfg)
    if rope is not None and "gemma3" not in model_type:
        rope_type = rope["rope_type"]
        if rope_type not in ("su", "longrope", "llama3", "default"):
            factor = float(rope.get("factor") or 1.0)
            if rope_type == "yarn":
                derived = float(rope.get("original_max_position_embeddings", derived))
            derived *= factor
    limit = int(derived)
    default = limit
    if rope is not None and rope["rope_type"] == "longrope":
        # vLLM defaults LongRoPE models to their original context to avoid slow short sequences.
        default = int(cfg.get("original_max_position_embeddings", limit))
    return limit, default


def _attention(cfg: Mapping[str, Any], model_type: str, hidden: int) -> AttentionFacts:
    heads = _require_int(cfg, "num_attention_heads", "n_head", "num_heads")
    kv_heads = int(_get(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads))
    mla = None
    if _get(cfg, "kv_lora_rank") is not None:
        mla = MlaFacts(
            kv_lora_rank=_require_int(cfg, "kv_lora_rank"),
            q_lora_rank=_get(cfg, "q_lora_rank"),
            qk_nope_head_dim=_require_int(cfg, "qk_nope_head_dim"),
            qk_rope_head_dim=_require_int(cfg, "qk_rope_head_dim"),
            v_head_dim=_require_int(cfg, "v_head_dim"),
        )
        head_dim = mla.kv_lora_rank + mla.qk_rope_head_dim  # what vLLM's get_head_size returns for MLA
        kv_heads = 1
    else:
        head_dim = int(_get(cfg, "head_dim", default=0)) or hidden // heads
    qkv_bias = bool(_get(cfg, "attention_bias", default=model_type in ("qwen2", "qwen2_moe")))
    o_bias = model_type == "gpt_oss" or bool(_get(cfg, "attention_out_bias", default=False))
    if model_type == "gpt_oss":
        qkv_bias = True
    return AttentionFacts(
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        qk_norm=model_type in ("qwen3", "qwen3_moe", "qwen3_next", "gemma3", "gemma3_text"),
        sinks=model_type == "gpt_oss",
        mla=mla,
    )


def _moe(cfg: Mapping[str, Any], model_type: str, num_layers: int) -> MoEFacts | None:
    experts = _get(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if not experts:
        return None
    per_token = _require_int(cfg, "num_experts_per_tok", "experts_per_token", "moe_top_k")
    expert_inter = int(_get(cfg, "moe_intermediate_size", "intermediate_size"))
    shared = 0
    if _get(cfg, "n_shared_experts"):
        shared = int(cfg["n_shared_experts"]) * expert_inter
    elif _get(cfg, "shared_expert_intermediate_size"):
        shared = int(cfg["shared_expert_intermediate_size"])
    dense: set[int] = set()
    first_dense = int(_get(cfg, "first_k_dense_replace", default=0))
    dense.update(range(min(first_dense, num_layers)))
    step = int(_get(cfg, "decoder_sparse_step", "moe_layer_freq", default=1))
    if step > 1:
        dense.update(i for i in range(num_layers) if (i + 1) % step != 0)
    dense.update(int(i) for i in (_get(cfg, "mlp_only_layers", default=[]) or []))
    return MoEFacts(
        num_experts=int(experts),
        experts_per_token=per_token,
        expert_intermediate_size=expert_inter,
        shared_intermediate_size=shared,
        shared_expert_gate=model_type in ("qwen2_moe", "qwen3_next") and shared > 0,
        router_bias=model_type == "gpt_oss",
        expert_bias=model_type == "gpt_oss",
        dense_layers=frozenset(dense),
    )


def _linear_attention(cfg: Mapping[str, Any]) -> LinearAttentionFacts:
    return LinearAttentionFacts(
        num_key_heads=_require_int(cfg, "linear_num_key_heads"),
        num_value_heads=_require_int(cfg, "linear_num_value_heads"),
        key_head_dim=_require_int(cfg, "linear_key_head_dim"),
        value_head_dim=_require_int(cfg, "linear_value_head_dim"),
        conv_kernel=_require_int(cfg, "linear_conv_kernel_dim"),
    )


def checkpoint_quantization(cfg: Mapping[str, Any]) -> CheckpointQuantization | None:
    """Read quantization_config into one of our formats; None for an unquantized checkpoint."""
    qc = cfg.get("quantization_config")
    if not isinstance(qc, Mapping):
        return None
    method = str(qc.get("quant_method", "")).lower()
    ignored = tuple(str(m) for m in (qc.get("ignore") or qc.get("modules_to_not_convert") or ()))

    def make(fmt: QuantFormat, group: int | None = None) -> CheckpointQuantization:
        return CheckpointQuantization(method=method, format=fmt, group_size=group, ignored_modules=ignored)

    if method in ("fp8", "fbgemm_fp8", "ptpc_fp8"):
        return make(QuantFormat.FP8)
    if method == "mxfp4":
        return make(QuantFormat.MXFP4)
    if method in ("gptq", "gptq_marlin"):
        bits = int(qc.get("bits", 4))
        return make(QuantFormat.W4A16_GPTQ if bits == 4 else QuantFormat.W8A8, int(qc.get("group_size", 128)))
    if method in ("awq", "awq_marlin"):
        return make(QuantFormat.W4A16_AWQ, int(qc.get("group_size", 128)))
    if method in ("modelopt", "modelopt_fp4"):
        algo = str(qc.get("quant_algo", (qc.get("quantization") or {}).get("quant_algo", ""))).upper()
        return make(QuantFormat.NVFP4 if "FP4" in algo else QuantFormat.FP8, 16 if "FP4" in algo else None)
    if method == "compressed-tensors":
        return _compressed_tensors(qc, make)
    raise ModelConfigError(
        f"{FIELD}.quantization_config",
        f"quant_method {method!r} is not supported by rightsizer's memory model",
        "use a checkpoint in fp8, int8 (w8a8), gptq/awq int4, mxfp4 or nvfp4, or an unquantized one",
    )


def _compressed_tensors(qc: Mapping[str, Any], make: Any) -> CheckpointQuantization:
    groups = qc.get("config_groups") or {}
    weights: Mapping[str, Any] = {}
    for group in groups.values():
        if isinstance(group, Mapping) and isinstance(group.get("weights"), Mapping):
            weights = group["weights"]
            break
    bits = int(weights.get("num_bits", 8))
    kind = str(weights.get("type", "int"))
    group_size = weights.get("group_size")
    fmt: CheckpointQuantization
    if bits == 8:
        fmt = make(QuantFormat.FP8 if kind == "float" else QuantFormat.W8A8)
    elif bits == 4 and kind == "float":
        fmt = make(QuantFormat.NVFP4, int(group_size or 16))
    elif bits == 4:
        fmt = make(QuantFormat.W4A16_GPTQ, int(group_size or 128))
    else:
        raise ModelConfigError(f"{FIELD}.quantization_config", f"compressed-tensors with {bits}-bit weights")
    return fmt


def _dtype(cfg: Mapping[str, Any]) -> str:
    raw = str(_get(cfg, "torch_dtype", "dtype", default="bfloat16")).replace("torch.", "")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32", "fp32": "float32"}
    dtype = aliases.get(raw, raw)
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelConfigError(f"{FIELD}.torch_dtype", f"unsupported dtype {raw!r}", "use bfloat16, float16 or float32")
    return dtype


def _rotary(cfg: Mapping[str, Any], attention: AttentionFacts, limit: int) -> tuple[int, int]:
    """(rows, rotary dim) of the rotary cos/sin cache vLLM allocates once per rank."""
    if attention.mla is not None:
        dim = attention.mla.qk_rope_head_dim
    else:
        dim = int(attention.head_dim * float(cfg.get("partial_rotary_factor", 1.0)))
    return limit, dim


def parse(config: Mapping[str, Any]) -> ModelFacts:
    """Parse a config.json mapping. Raises ModelConfigError naming the offending key."""
    if not isinstance(config, Mapping) or not config:
        raise ModelConfigError(FIELD, "config.json is empty or not a JSON object")
    cfg = text_config(config)
    architectures = cfg.get("architectures") or config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else str(cfg.get("model_type", "unknown"))
    model_type = str(cfg.get("model_type", "")).lower()
    hidden = _require_int(cfg, "hidden_size", "n_embd", "d_model")
    layers = _require_int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _require_int(cfg, "vocab_size", "padded_vocab_size")
    attention = _attention(cfg, model_type, hidden)
    kinds = _layer_kinds(cfg, model_type, layers)
    window = _get(cfg, "sliding_window") if LayerKind.SLIDING in kinds else None
    limit, default = _max_model_len(cfg, model_type)
    rope_rows, rotary_dim = _rotary(cfg, attention, limit)
    gemma = model_type.startswith("gemma")
    return ModelFacts(
        architecture=architecture,
        model_type=model_type,
        num_layers=layers,
        hidden_size=hidden,
        intermediate_size=int(_get(cfg, "intermediate_size", "ffn_dim", default=4 * hidden)),
        vocab_size=vocab,
        attention=attention,
        layer_kinds=kinds,
        sliding_window=int(window) if window else None,
        tie_word_embeddings=bool(_get(cfg, "tie_word_embeddings", default=gemma)),
        norms_per_layer=4 if gemma else 2,
        norm_bias=model_type in ("phi", "gpt2", "falcon"),
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        dtype=_dtype(cfg),
        max_model_len_limit=limit,
        default_max_model_len=default,
        rope_cache_positions=rope_rows,
        rotary_dim=rotary_dim,
        moe=_moe(cfg, model_type, layers),
        linear_attention=_linear_attention(cfg) if LayerKind.LINEAR in kinds else None,
        quantization=checkpoint_quantization(cfg),
    )
