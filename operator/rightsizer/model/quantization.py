"""Resolve spec.model.quantization and spec.model.dtype against the checkpoint: what vLLM will load, and the
flags it needs. An explicit format must match a quantized checkpoint; only fp8 can be applied online."""

from __future__ import annotations

from dataclasses import dataclass

from rightsizer.api.v1alpha1.llmdeployment import ModelDType, ModelSource, Quantization
from rightsizer.errors import SizingError
from rightsizer.model.config import ModelFacts, WeightFormat


@dataclass(frozen=True)
class WeightChoice:
    format: WeightFormat
    dtype: str  # compute dtype vLLM resolves
    quantization_flag: str | None  # vLLM --quantization value, only for online quantization
    dtype_flag: str | None  # vLLM --dtype value when the spec overrides the checkpoint's
    group_size: int | None
    quantize_attention: bool
    description: str


def resolve_dtype(spec: ModelDType, facts: ModelFacts) -> str:
    """vLLM's `--dtype auto`: the checkpoint's dtype, with float32 checkpoints downcast to bfloat16."""
    if spec != ModelDType.AUTO:
        return spec.value
    return "bfloat16" if facts.dtype == "float32" else facts.dtype


def _keeps_attention(module: str) -> bool:
    """Whether an unquantized module of the checkpoint (`model.layers.*.self_attn`, `...self_attn*`) leaves the
    attention projections in the activation dtype. Norms and the sparse-attention indexer that sit inside the
    attention block (GLM-5.2-FP8 lists `self_attn.kv_a_layernorm`, `self_attn.indexers_proj`,
    `self_attn.indexer.k_norm.bias`) are not its projections: the projections stay quantized."""
    if "attn" not in module:
        return False
    parts = module.replace("*", "").split(".")
    return not any(part.endswith("norm") or part.startswith("indexer") for part in parts)


def resolve_weights(model: ModelSource, facts: ModelFacts) -> WeightChoice:
    dtype = resolve_dtype(model.dtype, facts)
    dtype_flag = model.dtype.value if model.dtype != ModelDType.AUTO else None
    checkpoint = facts.quantization
    wanted = model.quantization
    if checkpoint is not None:
        if wanted not in (Quantization.AUTO, Quantization(checkpoint.format.value)):
            raise SizingError(
                "spec.model.quantization",
                f"the checkpoint is already quantized as {checkpoint.format.value} ({checkpoint.method})",
                f"set it to auto or {checkpoint.format.value}, or point spec.model.name at an unquantized checkpoint",
            )
        attention_kept = any(_keeps_attention(module) for module in checkpoint.ignored_modules)
        return WeightChoice(
            format=checkpoint.format,
            dtype=dtype,
            quantization_flag=None,  # vLLM detects the format from quantization_config
            dtype_flag=dtype_flag,
            group_size=checkpoint.group_size,
            quantize_attention=not attention_kept,
            description=f"{checkpoint.format.value} checkpoint ({checkpoint.method}), detected by vLLM",
        )
    if wanted in (Quantization.AUTO, Quantization.NONE):
        return WeightChoice(WeightFormat.NONE, dtype, None, dtype_flag, None, True, f"{dtype} (unquantized)")
    if wanted == Quantization.FP8:
        return WeightChoice(
            WeightFormat.FP8, dtype, "fp8", dtype_flag, None, True, "fp8, quantized online at load (--quantization fp8)"
        )
    raise SizingError(
        "spec.model.quantization",
        f"{wanted.value} needs a checkpoint already quantized that way, but this config has no quantization_config",
        "point spec.model.name at a pre-quantized checkpoint, or use fp8, which vLLM applies online",
    )
