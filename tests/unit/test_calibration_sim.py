"""Self-calibration against the vLLM simulator's own scheduler (e2e/vllm_sim.engine), offline: what the local-plane
test (tests/integration/test_calibration.py) does, without the plane. One replica of the autoscaling rig's plan
(Llama 3.1 70B FP8 on one H200) runs `error` times the model's step time under Poisson arrivals with the conversation
trace's lengths; every 2 s a 15 s window of its metrics (as vLLM exports them: mean TTFT, ITL and prefill time, the
finished requests' lengths) goes to scaling.calibration, as the operator's pass would."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from e2e.loadgen import load_trace
from e2e.vllm_sim.engine import Engine, Request, Step
from rightsizer.api.v1alpha1.llmdeployment import LLMDeploymentSpec
from rightsizer.facts.perf_calibration import VLLM
from rightsizer.perf import Replica
from rightsizer.perf.in_force import replica_of
from rightsizer.scaling.calibration import Calibration, observe
from rightsizer.scaling.window import WindowStats
from rightsizer.sizing import SizingRequest, plan
from rightsizer.sizing.pools import default_pools
from tests.unit.helpers import REPO, facts_of

MODEL = "meta-llama/Llama-3.1-70B-Instruct"
WINDOW_S, EVERY_S = 15.0, 2.0


@pytest.fixture(scope="module")
def rig() -> tuple[Replica, int, list[tuple[int, int]]]:
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"name": MODEL, "quantization": "fp8"},
            "serving": {"maxModelLen": 32768},
            "workload": {"inputTokens": 1155, "outputTokens": 211},
            "slo": {"ttftP95Ms": 2000, "itlP95Ms": 100},
            "gpu": {"products": ["H200"]},
        }
    )
    facts = facts_of(MODEL)
    chosen = plan(SizingRequest(spec, facts, default_pools()), MODEL)
    trace = load_trace(REPO / "tests" / "data" / "azure-llm-2023-conv.csv", 32768)
    return (
        replica_of(spec, facts, chosen),
        chosen.kv_cache_blocks,
        [(r.prompt_tokens, r.output_tokens) for r in trace.requests],
    )


def run(
    rig: tuple[Replica, int, list[tuple[int, int]]],
    error: float,
    *,
    rate: float = 1.0,
    seconds: float = 150.0,
    prefill_histogram: bool = True,
) -> list[tuple[float, Calibration]]:
    model, blocks, lengths = rig
    rng = random.Random(1)
    engine = Engine(model.scaled(error, error), blocks)
    t, arrival, step_end, next_window = 0.0, rng.expovariate(rate), math.inf, WINDOW_S
    step: Step | None = None
    first: list[tuple[float, float]] = []  # (time, TTFT)
    gaps: list[tuple[float, float]] = []  # (time, inter-token latency)
    finished: list[tuple[float, int, int, float]] = []  # (time, prompt, output, prefill time)
    state, trail = Calibration(), []
    while t < seconds:
        if step is None and (step := engine.schedule(t)) is not None:
            step_end = t + step.seconds
        t = min(arrival, step_end if step is not None else math.inf, next_window)
        if step is not None and t >= step_end:
            for e in engine.complete(step, t):
                (first if e.first else gaps).append((t, e.latency + (VLLM.request_overhead_s if e.first else 0.0)))
                if e.finished:
                    r = e.request
                    assert r.first_token_at is not None and r.scheduled_at is not None
                    finished.append((t, r.prompt_tokens, r.max_tokens, r.first_token_at - r.scheduled_at))
            step = None
        if t >= arrival:
            prompt, output = lengths[rng.randrange(len(lengths))]
            engine.add(Request(prompt_tokens=prompt, max_tokens=output, arrival=t, queued=t))
            arrival = t + rng.expovariate(rate)
        if t >= next_window:
            w = [v for at, v in first if at > t - WINDOW_S]
            g = [v for at, v in gaps if at > t - WINDOW_S]
            f = [x for x in finished if x[0] > t - WINDOW_S]
            stats = WindowStats(
                pods=1,
                request_rate=len(w) / WINDOW_S,
                ttft_p95_s=None,
                itl_p95_s=None,
                waiting=float(len(engine.waiting)),
                running=float(len(engine.running)),
                kv_usage=None,
                mean_prompt_tokens=sum(x[1] for x in f) / len(f) if f else None,
                mean_generation_tokens=sum(x[2] for x in f) / len(f) if f else None,
                finished=float(len(f)),
                ttft_mean_s=sum(w) / len(w) if w else None,
                itl_mean_s=sum(g) / len(g) if g else None,
                prefill_mean_s=(sum(x[3] for x in f) / len(f) if f else None) if prefill_histogram else None,
            )
            state = observe(state, stats, model, t, window_s=WINDOW_S)
            trail.append((t, state))
            next_window += EVERY_S
    return trail


def factors(trail: list[tuple[float, Calibration]], after: float) -> list[tuple[float, float]]:
    return [(s.prefill.factor, s.decode.factor) for t, s in trail if t >= after]


@pytest.mark.parametrize("error", [1.4, 0.5])
def test_the_factors_find_the_simulators_speed_and_the_condition_flips(
    rig: tuple[Replica, int, list[tuple[int, int]]], error: float
) -> None:
    trail = run(rig, error)
    # From 60 s on (45 s of windows): decode within 10 % of the injected error. Prefill within 20 % (x1.4:
    # 1.32-1.45; x0.5: 0.50-0.57): a window's mean prefill time carries its own bursts of co-scheduled prompts,
    # which the Poisson estimate of them (Replica.scheduled_prefill_seconds) averages away. Against the prompt's own
    # steps alone it read 1.43-1.61 and 0.51-0.59. x0.5, not x0.7: the held-out interval's fast edge for this point
    # is about 0.67, so replicas 30 % faster than the model are within it.
    late = factors(trail, after=60.0)
    assert all(d == pytest.approx(error, rel=0.10) for _, d in late), late
    assert all(p == pytest.approx(error, rel=0.20) for p, _ in late), late
    t, last = trail[-1]
    ok, why = last.accurate(t, sustain_s=20.0)
    assert ok is False and "× the predicted" in why


def test_the_model_itself_stays_accurate(rig: tuple[Replica, int, list[tuple[int, int]]]) -> None:
    trail = run(rig, 1.0)
    late = factors(trail, after=60.0)
    assert all(d == pytest.approx(1.0, rel=0.05) for _, d in late), late
    assert all(p == pytest.approx(1.0, rel=0.10) for p, _ in late), late  # 1.00-1.07 (1.06-1.14 own steps only)
    t, last = trail[-1]
    assert last.accurate(t, sustain_s=20.0)[0] is True


def test_without_the_prefill_histogram_the_factors_do_not_chase_each_other(
    rig: tuple[Replica, int, list[tuple[int, int]]],
) -> None:
    """A fleet 40 % slower at 1 req/s runs near its true capacity: the TTFT is mostly waiting. Counted as prefill
    evidence, it drove the prefill factor to its bound (0.1) while the decode factor overshot (1.8); such windows are
    skipped, and the factors stay near the truth."""
    late = factors(run(rig, 1.4, prefill_histogram=False), after=60.0)
    assert all(0.9 < p < 2.0 and d == pytest.approx(1.4, rel=0.15) for p, d in late), late


def test_stats_are_what_observe_needs() -> None:
    # WindowStats' calibration fields default to None: a source without them (an older vLLM) calibrates nothing.
    bare = WindowStats(1, 1.0, None, None, 0.0, 1.0, None, 1000.0, 200.0, finished=20.0)
    assert (bare.ttft_mean_s, bare.itl_mean_s, bare.prefill_mean_s) == (None, None, None)
    assert replace(bare, prefill_mean_s=0.1).prefill_mean_s == 0.1
