"""The vLLM server command line for a plan. Pure and deterministic: the same plan gives the same list."""

from __future__ import annotations

from collections.abc import Sequence

from rightsizer.errors import SizingError

VLLM_PORT = 8000

# Flags rightsizer computes; setting them again in extraArgs would silently fight the plan.
COMPUTED_FLAGS = frozenset(
    {
        "--model",
        "--revision",
        "--served-model-name",
        "--port",
        "--tensor-parallel-size",
        "-tp",
        "--pipeline-parallel-size",
        "-pp",
        "--max-model-len",
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--gpu-memory-utilization",
        "--kv-cache-dtype",
        "--quantization",
        "-q",
        "--dtype",
        "--kv-cache-memory-bytes",
        "--kv-cache-memory",
        "--num-gpu-blocks-override",
    }
)
SPEC_FIELD_FOR_FLAG = {
    "--tensor-parallel-size": "spec.gpu.tensorParallelSize",
    "-tp": "spec.gpu.tensorParallelSize",
    "--pipeline-parallel-size": "spec.gpu.pipelineParallelSize",
    "-pp": "spec.gpu.pipelineParallelSize",
    "--max-model-len": "spec.serving.maxModelLen",
    "--gpu-memory-utilization": "spec.serving.gpuMemoryUtilization",
    "--kv-cache-dtype": "spec.serving.kvCacheDtype",
    "--quantization": "spec.model.quantization",
    "-q": "spec.model.quantization",
    "--dtype": "spec.model.dtype",
    "--model": "spec.model.name",
    "--served-model-name": "spec.model.servedName",
}


def computed_flag(arg: str) -> str | None:
    """The computed flag `arg` would set, or None. vLLM's FlexibleArgumentParser reads `_` as `-` in a long option's
    name, and argparse takes any unambiguous prefix of a long option (`--max-model` is `--max-model-len`); a prefix
    of several is an error in vLLM anyway. tests/contract checks this against the pinned release's parser."""
    flag = arg.split("=", 1)[0]
    if not flag.startswith("--"):
        return flag if flag in COMPUTED_FLAGS else None
    flag = "--" + flag[2:].split(".", 1)[0].replace("_", "-")
    if flag in COMPUTED_FLAGS:
        return flag
    prefixed = sorted(f for f in COMPUTED_FLAGS if f.startswith(flag))
    return prefixed[0] if len(flag) > 2 and prefixed else None


def check_extra_args(extra: Sequence[str]) -> None:
    for arg in extra:
        flag = computed_flag(arg)
        if flag is not None:
            field = SPEC_FIELD_FOR_FLAG.get(flag)
            fix = f"set {field} instead" if field else "remove it: rightsizer computes it from the memory model"
            spelled = arg.split("=", 1)[0]
            problem = f"{spelled} is computed by rightsizer" + (
                "" if spelled == flag else f" (a spelling of {flag} to vLLM)"
            )
            raise SizingError("spec.serving.engine.extraArgs", problem, fix)


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
    return args + list(extra)
