"""Efficiency factors of the performance model (rightsizer.perf): what fraction of a GPU's datasheet peaks a
serving engine achieves, and the fixed costs no roofline shows.

The numbers are fitted, not chosen: `bench/latency_model.py --fit` minimises the squared log error of the
predicted latencies against the published measurements in bench/data/published_latency.csv rows marked `fit`
(H100 only), and the H200/A100 rows validate them. Re-run it after adding data and paste its output here.

The vLLM factors come from vLLM 0.6-era measurements (the newest published ones with known hardware). V1
(0.8 and later) schedules with less CPU overhead per step, so predictions for current releases err on the slow
side, which is the safe side for sizing.
"""

from __future__ import annotations

from dataclasses import dataclass

# One GPU's share of a node's network for a pipeline hand-off between nodes: 400 Gb/s (NDR) per GPU and a 10 µs
# point-to-point latency, the figures aiconfigurator uses for H100-class nodes
# (ai-dynamo/aiconfigurator@77f0282:src/aiconfigurator/systems/h800_sxm.yaml, inter_node_bw, p2p_latency).
# No published vLLM point measures it; a hand-off moves one hidden vector per token, so it matters little.
INTER_NODE_GB_PER_S = 50.0
INTER_NODE_LATENCY_S = 10e-6


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of peak and fixed costs of one serving engine."""

    hbm: float  # achieved / peak HBM bandwidth when streaming weights and the KV cache
    compute: float  # achieved / peak dense tensor throughput (GEMMs and attention) at large token counts
    link: float  # achieved / peak per-direction NVLink or PCIe bandwidth inside a ring all-reduce
    allreduce_latency_s: float  # fixed cost of one tensor-parallel all-reduce (launch, sync, small messages)
    step_overhead_s: float  # per engine step: scheduling, input preparation, sampling, output processing
    request_overhead_s: float  # per request, in TTFT only: HTTP, tokenisation, detokenising the first token
    # Terms added with the V1 calibration. Their defaults are neutral (the model before it), so an Efficiency that
    # leaves them out predicts exactly what the older model did.
    attention_hbm: float = 1.0  # paged KV-cache reads, relative to `hbm` (block gathers stream less well)
    moe_hbm: float = 1.0  # routed-expert weight reads, relative to `hbm` (grouped GEMMs over few tokens per expert)
    seq_overhead_s: float = 0.0  # per running sequence per step: scheduling, sampling, detokenising (CPU)
    roofline_overlap: float = 0.0  # share of the smaller of memory time and compute time that is not hidden
    block_fp8_on_bf16_peak: bool = False  # block-scaled FP8 weights compute at the bf16 peak, not the FP8 one
    mxfp4_on_bf16_peak: bool = False  # MXFP4 weights compute at the bf16 peak (bf16 activations), not the FP4 one
    source: str = ""


# The hardware fractions and the per-step overhead: fitted by `bench/latency_v0.py --fit` on the 25 H100 rows of
# bench/data/published_latency.csv (vLLM's CI, late 2024; docs/performance-model.md, "Calibration"). hbm sits at
# its 0.92 ceiling: the published decode steps are explained by near-peak streaming plus a ~3 ms per-step overhead.
# The V1 engine's CPU costs: fitted by `bench/latency_model.py --fit` on the `fit` split of the V1 corpus
# (bench/data/latency-published.csv), which the 0.6-era rows cannot see: a fixed ~35 ms per request in TTFT (HTTP,
# tokenising, the first detokenise, the reasoning and tool parsers) and ~60 µs per running sequence per step
# (sampling, detokenising and streaming each sequence's token), which is what makes loaded steps slower than the
# GPU work alone. Refitted when the bench began to drain bursts step by step (perf.drain) instead of the fluid
# approximation: 34.9 ms and 55.6 µs before. Checked on the `holdout` split and by leave-one-source-out
# (docs/benchmarks.md).
VLLM = Efficiency(
    hbm=0.920,
    compute=0.489,
    link=0.8,  # not identified by the published points (see bench/latency_v0.py); an assumption
    allreduce_latency_s=42.5e-6,
    step_overhead_s=3180e-6,
    request_overhead_s=34849e-6,
    seq_overhead_s=59.7e-6,
    # Not fitted: vLLM's own kernel benchmarks on H100 (vllm-project/vllm#23280, the SM90 block-FP8 CUTLASS kernel,
    # 2025-09) measure 128x128 block-scaled FP8 GEMMs at 0.30-0.74x torch's bf16 GEMM throughput on the PR's
    # DeepSeek-V3 shapes at 2,048-16,384 tokens (N=2112 K=7168 at 8,192 tokens: 490 TFLOP/s CUTLASS, 407 Triton,
    # against 666 bf16), never above it; so block-FP8 checkpoints get the bf16 peak, per-tensor FP8 keeps the FP8
    # one. DeepGEMM (vLLM's default from 0.11 where installed) is faster, but most of the corpus's block-FP8
    # deployments on those releases ran slower than the FP8 peak predicts too (docs/performance-model.md §3).
    block_fp8_on_bf16_peak=True,
    # Not fitted either: vLLM's MXFP4 MoE backends default to bf16 activations (v0.10.2 mxfp4.py get_mxfp4_backend:
    # "Using FlashInfer MXFP4 BF16 backend for SM100"; v0.19.0 fused_moe/oracle/mxfp4.py _get_priority_backends:
    # "Only includes BF16 backends. MXFP8 backends are selected via env vars"), and a bf16 operand multiplies at
    # the bf16 rate; Hopper and Ampere have no FP4 tensor cores and ran MXFP4 at the bf16 peak already.
    mxfp4_on_bf16_peak=True,
    source="fit: vLLM CI (late 2024) on H100 for the hardware; the V1 corpus's fit split for the CPU costs",
)

# TensorRT-LLM (NVIDIA NIM), used only by the bench: its rows share the hardware factors above and carry
# their own fixed costs, so that they inform the hardware terms without passing for vLLM. The fit drives its
# per-step overhead to zero (a C++ runtime with CUDA graphs).
TENSORRT_LLM = Efficiency(
    hbm=VLLM.hbm,
    compute=VLLM.compute,
    link=VLLM.link,
    allreduce_latency_s=VLLM.allreduce_latency_s,
    step_overhead_s=0.0,
    request_overhead_s=34488e-6,
    source="fit: NVIDIA NIM 1.8.0, Llama-3.3-70B FP8 TP2 on H100, 5000/500 tokens",
)

# GPU products with published serving measurements behind the factors above; others are extrapolated.
CALIBRATED_PRODUCTS = frozenset({"NVIDIA-H100-80GB-HBM3", "NVIDIA-H200", "NVIDIA-A100-SXM4-80GB"})
