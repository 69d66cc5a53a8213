"""A burst drained by vLLM V1's scheduler step by step (perf.drain): the schedule's shape and its cost."""

from __future__ import annotations

import math

import pytest

from rightsizer.facts.gpus import lookup
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.perf import Replica, build_replica
from rightsizer.perf.drain import drain
from tests.unit.helpers import facts_of

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def replica(seqs: int = 256, budget: int = 8192, utilization: float = 0.9, gpu: str = "H100") -> Replica:
    settings = EngineSettings(1, 1, seqs, budget, 8192, utilization, "bfloat16", "auto", WeightFormat.NONE)
    facts, product = facts_of(LLAMA_8B), lookup(gpu)
    memory = replica_memory(facts, settings, product, profile_for("0.19.0"))
    return build_replica(facts, settings, product, memory)


def test_one_request_is_its_prefill_then_one_decode_step_per_token() -> None:
    r = replica()
    d = drain(r, [1000], [100], first_token_s=0.03)
    assert d.ttft_p50 == pytest.approx(0.03 + r.prefill_seconds(1000))
    assert d.itl_p50 == pytest.approx(r.decode_step_seconds(1, 1050), rel=0.02)
    assert d.steps == 100 and d.preemptions == 0


def test_a_long_prompt_is_chunked_by_the_token_budget() -> None:
    r = replica(budget=2048)
    d = drain(r, [5000], [2])
    assert d.steps == math.ceil(5000 / 2048) + 1  # three chunk steps, the last samples the first token; one decode
    assert d.ttft_p50 == pytest.approx(r.prefill_seconds(5000))


def test_short_prompts_share_a_step_and_their_first_tokens_come_together() -> None:
    r = replica()
    d = drain(r, [100] * 50, [20] * 50)
    assert len(set(d.first_tokens)) == 1  # 5,000 prompt tokens fit one 8,192-token step
    assert d.itl_p50 == pytest.approx(r.decode_step_seconds(50, 110), rel=0.05)


def test_a_burst_beyond_max_num_seqs_waits_for_slots() -> None:
    r = replica(seqs=32)
    d = drain(r, [200] * 64, [50] * 64)
    first, second = sorted(d.first_tokens[:32]), sorted(d.first_tokens[32:])
    assert second[0] > first[-1] + 40 * r.decode_step_seconds(32, 220)  # the second half starts as the first ends


def test_the_median_gap_is_the_chunk_carrying_step_while_prompts_keep_coming() -> None:
    """Many long prompts and few output tokens: most gaps are steps that also prefill another prompt's chunk."""
    r = replica(budget=2048)
    d = drain(r, [4000] * 100, [10] * 100)
    assert d.itl_p50 > 3 * r.decode_step_seconds(50, 4000)


def test_a_kv_cache_that_runs_out_preempts_and_still_finishes() -> None:
    r = replica(utilization=0.25)  # Llama 8B on one H100 at 25 %: a few GiB of KV cache
    assert r.kv_blocks is not None
    prompts = [6000] * 40
    d = drain(r, prompts, [500] * 40)
    assert d.preemptions > 0
    assert len(d.first_tokens) == 40 and not any(math.isnan(t) for t in d.first_tokens)


def counted_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls to the step model (one element per call)."""
    calls: list[int] = []
    priced = Replica.step_seconds

    def counted(self: Replica, *args: float) -> float:
        calls.append(1)
        return priced(self, *args)

    monkeypatch.setattr(Replica, "step_seconds", counted)
    return calls


def test_runs_of_alike_steps_are_priced_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight requests decoding 2,000 tokens each: 2,000 steps, a handful of events, a handful of prices."""
    calls = counted_steps(monkeypatch)
    d = drain(replica(), [100] * 8, [2000] * 8)
    assert d.steps >= 2000
    assert len(calls) <= 10


def test_a_thousand_requests_cost_at_most_a_price_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ShareGPT-like burst of 1,000 requests: at most one step price per scheduling event (each request is admitted
    once and finishes once), whatever the number of steps. (What that costs in milliseconds is bench/perf_timing.py
    --drain's to measure.)"""
    calls = counted_steps(monkeypatch)
    prompts = [50 + (i * 37) % 400 for i in range(1000)]
    outputs = [20 + (i * 53) % 380 for i in range(1000)]
    d = drain(replica(seqs=1024), prompts, outputs)
    assert d.steps >= max(outputs) and d.preemptions == 0
    assert len(calls) <= 2 * len(prompts)
