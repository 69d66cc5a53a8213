"""Block-quantized FP8 checkpoints as published: the catalog's bf16 config.json with the FP8 release's
quantization_config (the architecture keys of the two releases are the same; only quantization_config is added).

- Qwen/Qwen3-235B-A22B-FP8: "fine-grained fp8 quantization with block size of 128" (its model card, "Note on FP8";
  mirrored at github.com/akash-network/awesome-akash Qwen3-235B-A22B-FP8/README.md), quantization_config
  {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]} as in
  Qwen's FP8 configs; vLLM issue #17569 (github.com/vllm-project/vllm/issues/17569) is this checkpoint at TP8
  failing with "The output_size of gate's and up's weight = 192 is not divisible by weight quantization
  block_n = 128."
- Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8: config.json at snapshot 003f183a92fbe5b9a8325aaa8b2ae797c91dd90f,
  quantization_config {"activation_scheme": "dynamic", "modules_to_not_convert": ["lm_head", per-layer
  input_layernorm, mlp.gate, post_attention_layernorm], "quant_method": "fp8", "weight_block_size": [128, 128]}.
"""

from __future__ import annotations

from typing import Any

from rightsizer.facts import catalog
from rightsizer.model.config import ModelFacts, parse

QWEN3_FP8 = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}


def _coder_not_converted(layers: int) -> list[str]:
    kept = ["lm_head"]
    for i in range(layers):
        kept += [f"model.layers.{i}.input_layernorm", f"model.layers.{i}.mlp.gate"]
        kept.append(f"model.layers.{i}.post_attention_layernorm")
    return kept


QWEN3_CODER_FP8 = {
    "activation_scheme": "dynamic",
    "modules_to_not_convert": _coder_not_converted(62),
    "quant_method": "fp8",
    "weight_block_size": [128, 128],
}

# FP8 checkpoint -> (the catalog's bf16 release, its published quantization_config)
FP8_CHECKPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "Qwen/Qwen3-235B-A22B-FP8": ("Qwen/Qwen3-235B-A22B", QWEN3_FP8),
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8": ("Qwen/Qwen3-Coder-480B-A35B-Instruct", QWEN3_CODER_FP8),
}


def fp8_config(name: str) -> dict[str, Any]:
    base, quantization = FP8_CHECKPOINTS[name]
    config = catalog.lookup(base)
    assert config is not None, f"{base} missing from the catalog"
    return {**config, "quantization_config": quantization}


def fp8_facts(name: str) -> ModelFacts:
    return parse(fp8_config(name))
