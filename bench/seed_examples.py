"""The seed documents' worked sizing examples, next to rightsizer's numbers for the same cases.

    python bench/seed_examples.py

1. Azure ND H200 v5 article, Table 2: maximum batch at FP8 for a 1,152-token sequence on one 140 GB GPU, from
   batch × seq × 2 × layers × heads × head_dim × bytes (published: Llama 3 8B 206, Mistral 7B 210, Phi-3 medium 123).
2. The rule of thumb M = P × 4 B / (32 / Q) × 1.2 (Llama 70B at 16 bit: 168 GB).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts import catalog
from rightsizer.facts.gpus import lookup
from rightsizer.model.config import ModelFacts, parse
from rightsizer.model.params import total_parameters
from rightsizer.sizing import SizingRequest, plan, search
from rightsizer.sizing.pools import GpuPool

AZURE_GPU_BYTES = 140e9
AZURE_SEQUENCE = 1152
AZURE_PUBLISHED = {
    "meta-llama/Llama-3.1-8B-Instruct": 206,
    "mistralai/Mistral-7B-v0.1": 210,
    "microsoft/Phi-3-medium-128k-instruct": 123,
}


def facts(name: str) -> ModelFacts:
    return parse(catalog.lookup(name) or {})


def azure_max_batch(f: ModelFacts, weight_bytes: float, kv_bytes: float) -> float:
    """The article's formula: every attention head counted (no grouped-query attention), no engine overheads."""
    free = AZURE_GPU_BYTES - total_parameters(f) * weight_bytes
    per_sequence = AZURE_SEQUENCE * 2 * f.num_layers * f.attention.num_heads * f.attention.head_dim * kv_bytes
    return free / per_sequence


def rightsizer_fp8_on_h200(name: str) -> tuple[int, float]:
    """(max-num-seqs, sequences of 1,152 tokens the KV cache holds) for fp8 weights and fp8 KV on one H200."""
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"name": name, "quantization": "fp8"},
            "serving": {"maxModelLen": AZURE_SEQUENCE, "kvCacheDtype": "fp8"},
            "workload": {"inputTokens": 1024, "outputTokens": 128},
            "gpu": {"tensorParallelSize": 1},
        }
    )
    pool = GpuPool("h200", lookup("H200"), 8, 1)
    best = search(SizingRequest(spec, facts(name), [pool])).candidates[0]
    return best.settings.max_num_seqs, best.memory.concurrency_at(AZURE_SEQUENCE, best.settings)


def rule_of_thumb_gb(params: float, bits: int) -> float:
    return params * 4 / (32 / bits) * 1.2 / 1e9


def main() -> None:
    print("1. Maximum batch at 1,152 tokens, FP8 (Azure ND H200 v5 article, Table 2)")
    print(
        f"   {'model':40s} {'published':>9s} {'formula 1 B KV':>15s} {'formula 2 B KV':>15s} "
        f"{'rightsizer H200':>16s} {'max-num-seqs':>12s}"
    )
    for name, published in AZURE_PUBLISHED.items():
        f = facts(name)
        one, two = azure_max_batch(f, 1.0, 1.0), azure_max_batch(f, 1.0, 2.0)
        seqs, held = rightsizer_fp8_on_h200(name)
        print(f"   {name:40s} {published:9d} {one:15.0f} {two:15.0f} {held:16.0f} {seqs:12d}")
    print("   rightsizer: sequences of 1,152 tokens the KV cache holds under vLLM 0.19's accounting on one H200")
    print("   (139.81 GiB seen by torch, 0.9 utilisation, fp8 weights and KV); max-num-seqs stays at vLLM's cap.")
    print()
    params = total_parameters(facts("meta-llama/Llama-3.1-70B-Instruct"))
    print("2. Rule of thumb M = P × 4 B / (32 / Q) × 1.2")
    print(f"   Llama 70B, 16 bit, 70e9 parameters:        {rule_of_thumb_gb(70e9, 16):6.1f} GB")
    print(f"   Llama 3.1 70B, exact {params:,} parameters: {rule_of_thumb_gb(params, 16):6.1f} GB")
    spec = LLMDeploymentSpec.model_validate(
        {"model": {"name": "meta-llama/Llama-3.1-70B-Instruct"}, "serving": {"maxModelLen": 8192}}
    )
    p = plan(
        SizingRequest(spec, facts("meta-llama/Llama-3.1-70B-Instruct"), [GpuPool("h200", lookup("H200"), 8, 1)]),
        "meta-llama/Llama-3.1-70B-Instruct",
    )
    m = p.memory
    fixed = (m.weights_gib_per_gpu + m.activation_gib_per_gpu + m.non_torch_gib_per_gpu) * p.gpus_per_replica
    print(
        f"   rightsizer on H200: TP{p.tensor_parallel_size}; per GPU weights {m.weights_gib_per_gpu} GiB, activation "
        f"{m.activation_gib_per_gpu}, non-torch {m.non_torch_gib_per_gpu}: {fixed:.1f} GiB "
        f"({fixed * 1.073741824:.1f} GB) before the KV cache, {m.kv_cache_gib_per_gpu * p.gpus_per_replica:.1f} GiB"
        f" of KV cache ({p.kv_cache_tokens:,} tokens)"
    )


if __name__ == "__main__":
    main()
