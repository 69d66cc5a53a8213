"""The performance model: how fast one vLLM replica serves, from the bytes it moves and the FLOPs it computes.

Modules: step (one engine step), load (continuous batching in steady state and the SLO searches), in_force (the
model of a plan already running, for the autoscaler). Sizing's hook over this model is sizing.performance.

A roofline per engine step, summed per operation and per pipeline stage::

    linear    = max(weight bytes / HBM,  GEMM FLOPs / dense peak)        weights are read once per step
    attention = max(KV bytes / HBM,      attention FLOPs / bf16 peak)     KV of every decoding sequence is read
    comm      = all-reduces × (latency + 2(TP−1)/TP × tokens × hidden × bytes / link)      (TP > 1 only)
    stage     = linear + attention + comm
    step      = max(Σ stages + hand-offs, micro-batches × slowest stage) + per-step overhead     (PP > 1)

HBM, peak FLOP/s and link bandwidth come from facts/gpus.py, each scaled by a fitted efficiency
(facts/perf_calibration.py). Weight bytes per rank follow the parameter inventory exactly as memory.py counts
them (per TP shard, per pipeline stage, in the checkpoint's format); for MoE layers only the experts the batch's
tokens are routed to are read: a fraction 1 − (1 − k/E)^tokens. The embedding is a lookup and is not streamed.
GEMM FLOPs use the FP8 (or FP4) tensor-core peak when the weights are in that format and the GPU has it.

vLLM's continuous batching on top of the step, in steady state (a fluid model):

* A decode step serves every running sequence; running = min(load, max_num_seqs, KV capacity at the workload's
  mean length P + O/2). Load beyond that waits for a slot: `concurrency − capacity` requests in a closed loop,
  an Erlang-C queue (halved for fixed-length requests) for Poisson arrivals.
* Chunked prefill (always on in V1): a prompt of P tokens is processed in chunks of at most
  max_num_batched_tokens − running tokens, each inside a decode step, so those steps take longer. With ρ the
  share of time spent on other requests' prefills, the mean inter-token latency is decode_step / (1 − ρ);
  per-token ITL is two-valued (plain decode steps and steps that carry a chunk), so ITL p95 jumps to the
  chunk step once more than 5 % of steps carry one.
* TTFT = request overhead + the step in progress (uniform residual) + waiting behind other prompts (M/D/1 on
  the prefill work) + the prompt's own chunk steps (+ the admission queue).

Two ways in:

Simulation-friendly (for a discrete-event simulator or a fake vLLM server that does its own scheduling)::

    replica = build_replica(facts, settings, gpu, memory)
    replica.decode_step_seconds(batch_size=32, mean_context_tokens=1500)
    replica.prefill_seconds(prompt_tokens=2000)                    # an idle replica, chunked by the budget
    replica.step_seconds(decode_seqs=31, mean_context_tokens=1500, prefill_tokens=2000, prefill_start=0)
    replica.running_capacity(input_tokens=1000, output_tokens=1000)   # sequences that run at once

Steady-state predictions (for sizing and the plan)::

    predict(replica, Traffic(input_tokens=1000, output_tokens=250, request_rate=3.0))  # or concurrency=...
    max_request_rate(replica, 1000, 250, Slo(ttft_p95_s=0.5, itl_p95_s=0.05))
    largest_batch_within(replica, 1000, 250, itl_p95_s=0.05)            # the max_num_seqs cap

All times are seconds. Pure: no I/O, deterministic.
"""

from rightsizer.perf import step as step_module
from rightsizer.perf.load import (
    UTILIZATION_CEILING,
    BatchLimit,
    Prediction,
    Quantiles,
    Slo,
    Traffic,
    largest_batch_within,
    max_concurrency_within,
    max_request_rate,
    predict,
    saturation_rate,
)
from rightsizer.perf.step import (
    Replica,
    StageCost,
    StepTerms,
    build_replica,
    gemm_peak_tflops,
    has_performance_figures,
    stage_cost,
)

__all__ = [
    "UTILIZATION_CEILING",
    "BatchLimit",
    "Prediction",
    "Quantiles",
    "Replica",
    "Slo",
    "StageCost",
    "StepTerms",
    "Traffic",
    "build_replica",
    "clear_caches",
    "gemm_peak_tflops",
    "has_performance_figures",
    "largest_batch_within",
    "max_concurrency_within",
    "max_request_rate",
    "predict",
    "saturation_rate",
    "stage_cost",
]


def clear_caches() -> None:
    """Forget memoised stage costs and batch limits (for cold-start measurements)."""
    step_module.clear_caches()
    largest_batch_within.cache_clear()
