"""The vLLM server command line for a plan. Pure and deterministic: the same plan gives the same list. What users
may append (spec.serving.engine.extraArgs) is checked by sizing.extra_args."""

from __future__ import annotations

import json
from collections.abc import Sequence

VLLM_PORT = 8000


def server_args(
    *,
    model: str,
    revision: str | None,
    served_name: str,
    tensor_parallel_size: int,
    pipeline_parallel_size: int,
    max_model_len: int,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    gpu_memory_utilization: float,
    kv_cache_dtype: str,
    quantization_flag: str | None,
    dtype_flag: str | None,
    expert_parallel: bool = False,
    mm_limits: Sequence[tuple[str, int]] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """Arguments for `vllm serve` (the image's entrypoint). Sizing flags are always explicit, so the memory the
    engine profiles is the memory rightsizer predicted (vLLM's own defaults vary by GPU and release)."""
    args = ["--model", model]
    if revision:
        args += ["--revision", revision]
    args += [
        "--served-model-name",
        served_name,
        "--port",
        str(VLLM_PORT),
        "--tensor-parallel-size",
        str(tensor_parallel_size),
        "--pipeline-parallel-size",
        str(pipeline_parallel_size),
    ]
    if expert_parallel:
        args.append("--enable-expert-parallel")  # whole experts per GPU (EP = TP): see model.parallelism
    args += [
        "--max-model-len",
        str(max_model_len),
        "--max-num-seqs",
        str(max_num_seqs),
        "--max-num-batched-tokens",
        str(max_num_batched_tokens),
        "--gpu-memory-utilization",
        f"{gpu_memory_utilization:g}",
    ]
    if kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", kv_cache_dtype]
    if quantization_flag:
        args += ["--quantization", quantization_flag]
    if dtype_flag:
        args += ["--dtype", dtype_flag]
    if mm_limits:
        # A JSON object of counts: the form vLLM 0.10.2, 0.11.0 and 0.19.0 all parse (`--limit-mm-per-prompt` is
        # json.loads-typed; 0.19 also takes {"image": {"count": N, ...}}, which the older releases refuse).
        args += ["--limit-mm-per-prompt", json.dumps(dict(mm_limits), separators=(",", ":"))]
    return args + list(extra)
