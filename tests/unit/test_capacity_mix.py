"""perf.in_force.mixed_capacity_rps: the autoscaler's per-replica capacity is continuous in the window's mean prompt."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rightsizer.facts import gpus
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.perf import Replica, Slo, build_replica
from rightsizer.perf.in_force import capacity_rps, mixed_capacity_rps
from tests.unit.helpers import facts_of

SLO = Slo(ttft_p95_s=3.0, itl_p95_s=0.1)


@pytest.fixture(scope="module")
def long_context() -> Replica:
    """Llama 3.1 8B on one H100 with a 32k window: a long-context service like the Mooncake trace's."""
    facts = facts_of("meta-llama/Llama-3.1-8B-Instruct")
    settings = EngineSettings(1, 1, 32, 8192, 32768, 0.9, "bfloat16", "auto", WeightFormat.NONE)
    gpu = gpus.lookup("H100")
    return build_replica(facts, settings, gpu, replica_memory(facts, settings, gpu, profile_for("0.19.0")))


def largest_step(values: list[float]) -> float:
    return max(abs(math.log(b / a)) for a, b in itertools.pairwise(values))


def test_no_cliff_where_the_mean_prompt_crosses_the_itl_switch(long_context: Replica) -> None:
    # 1 % steps of the mean prompt from 2k to 20k tokens.
    prompts = np.exp(np.linspace(math.log(2000), math.log(20000), 240)).tolist()
    at_mean = [capacity_rps(long_context, round(p), 350, SLO) for p in prompts]
    mixed = [mixed_capacity_rps(long_context, p, 350, SLO) for p in prompts]
    # At the mean, the ITL p95 switching from the decode step to the chunk step drops capacity by ~27 % in one step
    # (1.83 -> 1.34 req/s near 8k tokens), which flipped the recommendation by several replicas.
    assert largest_step(at_mean) > math.log(1.25)
    assert largest_step(mixed) < math.log(1.05)


def test_a_mix_costs_what_its_parts_do(long_context: Replica) -> None:
    # Linear costs give the same capacity as at the mean; the long part of the mix is what lowers it at long prompts.
    short = 400.0
    assert mixed_capacity_rps(long_context, short, 200, SLO) == pytest.approx(
        capacity_rps(long_context, round(short), 200, SLO), rel=0.10
    )
    assert mixed_capacity_rps(long_context, 14000.0, 350, SLO) < capacity_rps(long_context, 14000, 350, SLO)
    assert mixed_capacity_rps(long_context, 1e9, 350, SLO) >= 0.0  # beyond the window: capped, never an error
