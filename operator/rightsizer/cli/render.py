"""Plans as text for people: the table `rightsizer plan` prints by default."""

from __future__ import annotations

import shlex
import textwrap

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan, PoolPlan

WIDTH = 100


def _row(label: str, value: str) -> str:
    return f"  {label:<18}{value}"


def _bullets(items: list[str], marker: str) -> list[str]:
    lines = []
    for item in items:
        wrapped = textwrap.wrap(item, WIDTH - 6)
        lines.append(f"  {marker} {wrapped[0]}")
        lines.extend(f"    {line}" for line in wrapped[1:])
    return lines


def _args_block(args: list[str]) -> list[str]:
    """vLLM arguments, one flag (with its value) per line, shell-quoted so they can be pasted."""
    lines, current = [], ["vllm", "serve"]
    for arg in args:
        if arg.startswith("-") and current:
            lines.append(" ".join(current))
            current = []
        current.append(shlex.quote(arg))
    lines.append(" ".join(current))
    return ["    " + lines[0]] + [f"      {line}" for line in lines[1:]]


def plan_table(name: str, spec: LLMDeploymentSpec, plan: Plan, source: str) -> str:
    m = plan.memory
    graphs = f"{m.cuda_graph_gib_per_gpu:7.2f}" + ("" if m.cuda_graph_subtracted else "  (estimate, not subtracted)")
    lines = [
        f"{name}: {spec.model.name} on vLLM {plan.engine_version}  (config: {source})",
        "",
        _row("GPU", f"{plan.gpu_product}  (pool {plan.pool}, {plan.gpus_per_node} per node)"),
        _row(
            "Per replica",
            f"{plan.gpus_per_replica} GPU · TP {plan.tensor_parallel_size} · "
            f"PP {plan.pipeline_parallel_size} · {plan.nodes_per_replica} node"
            + ("s" if plan.nodes_per_replica > 1 else ""),
        ),
        _row("Replicas", f"{plan.replicas}  (spec: {spec.replicas.min}..{spec.replicas.upper})"),
        _row("Weights", f"{plan.quantization}, compute {plan.dtype}, KV cache {plan.kv_cache_dtype}"),
        _row("max-num-seqs", f"{plan.max_num_seqs}"),
        _row("max-model-len", f"{plan.max_model_len:,}"),
        _row("batched tokens", f"{plan.max_num_batched_tokens:,}"),
        _row(
            "KV cache",
            f"{plan.kv_cache_tokens:,} tokens ({plan.kv_cache_blocks:,} blocks of {plan.block_size}); "
            f"max concurrency {plan.max_concurrency:.2f}x at max-model-len, "
            f"{plan.workload_concurrency:.1f} at the workload's length",
        ),
    ]
    if plan.performance is not None:
        p = plan.performance
        flags = ("" if p.meets_slo else "  (misses the SLO)") + ("" if p.calibrated else "  (extrapolated)")
        lines.append(
            _row(
                "Predicted",
                f"TTFT p50/p95 {p.ttft_p50_ms:.0f}/{p.ttft_p95_ms:.0f} ms · ITL p50/p95 {p.itl_p50_ms:.1f}/"
                f"{p.itl_p95_ms:.1f} ms · {p.output_tokens_per_second:,.0f} tok/s ({p.concurrency:g} in flight)"
                + flags,
            )
        )
        lines.append(
            _row(
                "Slow edge",
                f"TTFT p95 up to {p.ttft_p95_ms_high:.0f} ms · ITL p95 up to {p.itl_p95_ms_high:.1f} ms "
                "(held-out errors of this kind of point; the SLO is checked against these)",
            )
        )
        lines.append(
            _row(
                "Capacity",
                f"{p.max_request_rate:.2f} req/s or {p.max_concurrency_within_slo} concurrent requests per replica"
                + (" within SLO" if spec.slo.ttft_p95_ms or spec.slo.itl_p95_ms else " (no SLO: 90% of saturation)"),
            )
        )
    lines += [
        "",
        f"  Memory per GPU, GiB (binding rank){'':8}",
        f"    budget        {m.requested_gib_per_gpu:7.2f}  = {m.total_gib_per_gpu:.2f} × "
        f"{plan.gpu_memory_utilization:g}",
        f"    weights       {m.weights_gib_per_gpu:7.2f}",
        f"    activation    {m.activation_gib_per_gpu:7.2f}",
        f"    non-torch     {m.non_torch_gib_per_gpu:7.2f}",
        f"    CUDA graphs   {graphs}",
        f"    KV cache      {m.kv_cache_gib_per_gpu:7.2f}",
        "",
        "  Why",
        *_bullets(plan.reasons, "•"),
    ]
    if plan.warnings:
        lines += ["", "  Warnings", *_bullets(plan.warnings, "!")]
    lines += ["", "  vLLM command", *_args_block(plan.vllm_args)]
    return "\n".join(lines)


def pools_table(pools: list[PoolPlan]) -> str:
    """Every allowed pool's own plan, ranked: where replicas go first, and where they overflow when it is full."""
    lines = ["  Pools, ranked (replicas overflow onto the next pool that fits when the first is full)"]
    for p in pools:
        head = f"    {p.rank}. {p.pool} ({p.gpu_product})"
        if p.fits:
            slo = "" if p.meets_slo is None else ("  meets SLO" if p.meets_slo else "  misses SLO")
            rate = "" if p.max_request_rate is None else f" · {p.max_request_rate:.2f} req/s per replica"
            price = "" if p.price_per_replica_hour is None else f" · {p.price_per_replica_hour:g}/replica-hour"
            head += (
                f": TP {p.tensor_parallel_size} · PP {p.pipeline_parallel_size} · {p.gpus_per_replica} GPU"
                f"{'s' if (p.gpus_per_replica or 0) > 1 else ''} · max-num-seqs {p.max_num_seqs} · batched "
                f"{p.max_num_batched_tokens:,} · {p.replicas} replica{'s' if p.replicas != 1 else ''}{rate}"
                f"{price}{slo}"
            )
        lines.extend(textwrap.wrap(head, WIDTH, subsequent_indent="       "))
        lines.extend(textwrap.wrap(p.why, WIDTH, initial_indent="       ", subsequent_indent="       "))
    return "\n".join(lines)
