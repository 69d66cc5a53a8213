"""The performance model of a plan in force: one replica's step times and its capacity within the SLO. Pure.

A Plan (status.plan, or `rightsizer plan -o json`) records every engine setting vLLM is started with; with the
model's facts and the spec's weight choice it rebuilds exactly the EngineSettings and memory accounting sizing
used, so the autoscaler, the vLLM simulator (e2e/vllm_sim) and sizing agree on what one replica does.

The capacity the autoscaler plans with is `perf.max_request_rate` for the traffic actually observed (mean prompt and
generation lengths of the requests that finished in the window) rather than the declared workload: a replica serves
fewer long requests per second than short ones. A window holds few requests, and a mean of a handful of them swings
wildly (output lengths are heavy-tailed), so the declared workload counts as PRIOR_REQUESTS requests of evidence:
the length used is (n · observed + PRIOR_REQUESTS · declared) / (n + PRIOR_REQUESTS) for n finished requests.
Lengths are snapped to a 10 % grid so that a cache of a few entries serves a steady traffic mix.
"""

from __future__ import annotations

import math
from functools import lru_cache

from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.api.v1alpha1.plan import Plan
from rightsizer.facts import gpus
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import ModelFacts
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.model.quantization import resolve_weights
from rightsizer.perf import Replica, Slo, build_replica, max_request_rate

LENGTH_GRID = 1.1  # relative step of the length grid
PRIOR_REQUESTS = 20.0  # the declared workload's weight, in requests, against the window's observed mean


def engine_settings(spec: LLMDeploymentSpec, facts: ModelFacts, plan: Plan) -> EngineSettings:
    """The settings the plan starts vLLM with (what sizing passed to memory.replica_memory)."""
    weights = resolve_weights(spec.model, facts)
    return EngineSettings(
        tensor_parallel_size=plan.tensor_parallel_size,
        pipeline_parallel_size=plan.pipeline_parallel_size,
        max_num_seqs=plan.max_num_seqs,
        max_num_batched_tokens=plan.max_num_batched_tokens,
        max_model_len=plan.max_model_len,
        gpu_memory_utilization=plan.gpu_memory_utilization,
        dtype=weights.dtype,
        kv_cache_dtype=plan.kv_cache_dtype,
        weight_format=weights.format,
        group_size=weights.group_size,
        quantize_attention=weights.quantize_attention,
        expert_parallel=plan.expert_parallel,
    )


def replica_of(spec: LLMDeploymentSpec, facts: ModelFacts, plan: Plan) -> Replica:
    """One replica of the plan, with the KV cache the plan reports. Raises ValueError for a GPU without
    performance figures."""
    settings = engine_settings(spec, facts, plan)
    gpu = gpus.lookup(plan.gpu_product)
    memory = replica_memory(facts, settings, gpu, profile_for(plan.engine_version))
    return build_replica(facts, settings, gpu, memory, gpus_per_node=plan.gpus_per_node)


def snap_length(tokens: float) -> int:
    """The nearest point of a geometric grid (steps of LENGTH_GRID) at or above 1."""
    if tokens <= 1:
        return 1
    step = round(math.log(tokens) / math.log(LENGTH_GRID))
    return max(1, round(LENGTH_GRID**step))


def expected_length(observed_mean: float | None, finished: float, declared: int) -> float:
    """The mean length to plan for: the window's observed mean, shrunk towards the declared one by how little
    evidence the window holds."""
    if observed_mean is None or finished <= 0:
        return float(declared)
    return (finished * observed_mean + PRIOR_REQUESTS * declared) / (finished + PRIOR_REQUESTS)


def slo_of(spec: LLMDeploymentSpec) -> Slo:
    slo = spec.slo
    return Slo(
        ttft_p95_s=slo.ttft_p95_ms / 1e3 if slo.ttft_p95_ms else None,
        itl_p95_s=slo.itl_p95_ms / 1e3 if slo.itl_p95_ms else None,
    )


def capacity_rps(replica: Replica, prompt_tokens: int, output_tokens: int, slo: Slo) -> float:
    """Poisson arrivals per second one replica serves within `slo` for requests of these lengths (snapped to the
    grid and capped at max_model_len as vLLM would: a prompt keeps room for one output token)."""
    limit = replica.settings.max_model_len
    prompt = min(snap_length(prompt_tokens), limit - 1)
    output = max(1, min(snap_length(output_tokens), limit - prompt))
    return _capacity(replica, prompt, output, slo)


@lru_cache(maxsize=256)
def _capacity(replica: Replica, prompt: int, output: int, slo: Slo) -> float:
    return max_request_rate(replica, prompt, output, slo)
