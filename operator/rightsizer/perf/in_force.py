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

`mixed_capacity_rps` is what the autoscaler plans with: a window's requests are a mix of lengths, not all at the
mean, and a replica's capacity for a mix is the harmonic mean of its capacities for the parts (each request takes
its own share of the replica's time). The mix assumed is a centre length, half of it and twice it, with weights 1/6,
2/3, 1/6 (three-point Gauss-Hermite for a normal spread of 0.40 in log length, ln 2 = 0.40 √3; published traces are
wider still), the centre at 12/13 of the observed mean so that the mix's mean is the observed one (a cost linear in
the prompt gives the same capacity as at the mean; only the model's non-linear parts differ), and between grid
points the capacity is interpolated geometrically in the prompt length. So capacity is a continuous function of the
observed mean: where the model's ITL p95 switches from the decode step to the chunk-carrying step (27 % within 1 %
of prompt length for Llama 3.1 8B on an H100 near 8k tokens: tests/unit/test_capacity_mix.py), the window's mean
crossing it no longer flips the recommendation by several replicas.
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
from rightsizer.model.multimodal import multimodal_serving
from rightsizer.model.quantization import resolve_weights
from rightsizer.perf import Prediction, Replica, Slo, Traffic, build_replica, max_request_rate, predict

LENGTH_GRID = 1.1  # relative step of the length grid
PRIOR_REQUESTS = 20.0  # the declared workload's weight, in requests, against the window's observed mean


def engine_settings(spec: LLMDeploymentSpec, facts: ModelFacts, plan: Plan) -> EngineSettings:
    """The settings the plan starts vLLM with (what sizing passed to memory.replica_memory)."""
    weights = resolve_weights(spec.model, facts)
    multimodal = multimodal_serving(spec, facts)
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
        encoder_loaded=multimodal.encoder_loaded,
        mm_limits=multimodal.limits,
        widen_encoder_outputs=multimodal.widen_encoder_outputs,
        encoder_data_parallel=multimodal.encoder_data_parallel,
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


# (share of the mean prompt, weight): half, once and twice a centre, weighted 1/6, 2/3, 1/6, the centre set so that
# the mix's mean is the observed mean (13/12 of the centre). See the module docstring.
MIX = ((6.0 / 13.0, 1.0 / 6.0), (12.0 / 13.0, 2.0 / 3.0), (24.0 / 13.0, 1.0 / 6.0))


def _interpolated(replica: Replica, prompt_tokens: float, output_tokens: int, slo: Slo) -> float:
    """capacity_rps between the two grid points around the prompt length, geometrically in the length."""
    if prompt_tokens <= 1:
        return capacity_rps(replica, 1, output_tokens, slo)
    position = math.log(prompt_tokens) / math.log(LENGTH_GRID)
    step = math.floor(position)
    low = capacity_rps(replica, max(1, round(LENGTH_GRID**step)), output_tokens, slo)
    high = capacity_rps(replica, max(1, round(LENGTH_GRID ** (step + 1))), output_tokens, slo)
    share = position - step
    if low <= 0 or high <= 0:
        return low if share < 0.5 else high
    return float(low ** (1 - share) * high**share)


def mixed_capacity_rps(replica: Replica, prompt_tokens: float, output_tokens: float, slo: Slo) -> float:
    """Requests per second one replica serves within `slo` for a mix of prompts around `prompt_tokens` (MIX), each
    interpolated between grid points: a continuous function of the mean. A part of the mix that no load lets meet
    the SLO is left out (those requests miss at any replica count; counting them would zero the capacity)."""
    output = max(1, round(output_tokens))
    inverse = weights = 0.0
    for share, weight in MIX:
        rate = _interpolated(replica, prompt_tokens * share, output, slo)
        if rate > 0:
            inverse, weights = inverse + weight / rate, weights + weight
    return weights / inverse if inverse > 0 else 0.0


def predicted_p95(
    replica: Replica, prompt_tokens: float, output_tokens: float, rate_per_replica: float
) -> tuple[float, float] | None:
    """The p95 TTFT and ITL (seconds) the model predicts for one replica at this Poisson load, for the mix of prompt
    lengths capacity assumes (MIX): a sixth of the requests carry twice the centre, so the mix's TTFT p95 is its long
    part's — the long prompt's own prefill plus the wait the load adds at the centre (with 12k-token prompts the p95
    at the mean is half the one observed). The ITL is the centre's. None when the load saturates the replica (its
    queue grows without bound: no steady p95)."""
    limit = replica.settings.max_model_len
    output_grid = snap_length(output_tokens)

    def at(share: float, rate: float) -> Prediction:
        prompt = min(snap_length(prompt_tokens * share), limit - 1)
        output = max(1, min(output_grid, limit - prompt))
        return predict(replica, Traffic(prompt, output, request_rate=rate))

    centre_share, long_share = MIX[1][0], MIX[-1][0]
    centre = at(centre_share, max(rate_per_replica, IDLE_RATE))
    if centre.saturated:
        return None
    wait = max(0.0, centre.ttft.p95 - at(centre_share, IDLE_RATE).ttft.p95)
    return max(centre.ttft.p95, at(long_share, IDLE_RATE).ttft.p95 + wait), centre.itl.p95


IDLE_RATE = 1e-6  # requests/s: a replica with nothing else to do
