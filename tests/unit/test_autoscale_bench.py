"""bench/autoscale.py's pieces: the trace format, the replica simulation's step loop, and a smoke run of the whole
comparison on a small synthetic trace."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench import autoscale as bench
from bench import autoscale_trace as traces
from bench.autoscale_policies import Static, cheapest_cover, run
from bench.autoscale_sim import ITL_BUCKETS, Engine, Simulation, histogram_quantile
from rightsizer.facts import gpus
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.perf import build_replica, max_request_rate
from tests.unit.helpers import facts_of

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


def write_trace(path: Path, arrivals: list[float], prompt: int = 1000, output: int = 100) -> Path:
    start = datetime(2023, 11, 16, 18, 15, 46)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t in arrivals:
        stamp = (start + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows.append(f"{stamp}0,{prompt},{output}")  # 7 fractional digits, as the Azure files have
    path.write_text("\n".join(rows) + "\n")
    return path


def engine() -> Engine:
    facts = facts_of(LLAMA_8B)
    settings = EngineSettings(1, 1, 256, 8192, 16384, 0.9, "bfloat16", "auto", WeightFormat.NONE)
    gpu = gpus.lookup("H100")
    replica = build_replica(facts, settings, gpu, replica_memory(facts, settings, gpu, profile_for("0.19.0")))
    return Engine(replica.step_seconds, 256, 8192, 400_000, replica.efficiency.request_overhead_s, 1)


def test_trace_is_read_sorted_from_zero_and_checked(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.csv", [5.25, 1.5, 3.0])
    trace = traces.load(path)
    assert trace.arrival.tolist() == pytest.approx([0.0, 1.5, 3.75])
    bad = tmp_path / "bad.csv"
    bad.write_text("time,prompt,output\n1,2,3\n")
    with pytest.raises(ValueError, match="TIMESTAMP,ContextTokens,GeneratedTokens"):
        traces.load(bad)


@pytest.mark.parametrize(
    ("mode", "factor"), [("superpose", 3.0), ("superpose", 2.5), ("replicate", 3.0), ("replicate", 0.5)]
)
def test_rate_scaling_multiplies_the_requests_and_keeps_the_span(mode: str, factor: float) -> None:
    rng = np.random.default_rng(0)
    base = traces.Trace(np.sort(rng.uniform(0, 600, 2000)), np.full(2000, 100), np.full(2000, 10))
    scaled = traces.scale_rate(base, factor, np.random.default_rng(1), mode=mode, jitter=60.0)
    assert len(scaled) == pytest.approx(factor * len(base), rel=0.05)
    assert scaled.arrival.min() >= 0 and scaled.arrival.max() <= base.duration + 1e-9
    assert np.all(np.diff(scaled.arrival) >= 0)
    assert traces.compress(base, 4.0).duration == pytest.approx(base.duration / 4)


def test_one_request_on_an_idle_replica_takes_exactly_the_model_times() -> None:
    e = engine()
    trace = traces.Trace(np.array([0.0, 10.0]), np.array([3000, 500]), np.array([4, 1]))
    sim = Simulation(trace, e, startup_s=0.0)
    sim.scale_to(1, 0.0, lead=0.0)
    sim.feed(math.inf)
    sim.advance_all(math.inf)
    prefill = e.step(0, 0.0, 3000, 0.0, 1)
    ttft = sim.ttft()
    assert ttft[0] == pytest.approx(prefill + e.request_overhead_s)
    steps = sim.servers[0].durations
    # Then three decode steps of one sequence over its growing context: 3001, 3002, 3003 tokens.
    assert steps[1:4] == pytest.approx([e.step(1, 3001 + i, 0, 0.0, None) for i in range(3)])
    assert ttft[1] == pytest.approx(e.step(0, 0.0, 500, 0.0, 1) + e.request_overhead_s)  # 1 output token: no decode


def test_an_overloaded_replica_queues_and_a_second_one_cuts_the_wait() -> None:
    e = engine()
    arrivals = np.linspace(0, 20, 400)  # 20 req/s of 4000-token prompts: twice what one H100 prefills
    trace = traces.Trace(arrivals, np.full(400, 4000), np.full(400, 50))
    waits = []
    for n in (1, 2):
        sim = Simulation(trace, e, startup_s=0.0)
        run(sim, Static("s", n), n)
        waits.append(float(np.nanmean(sim.ttft())))
    assert waits[1] < waits[0] / 2


@pytest.mark.parametrize(
    ("counts", "want"),
    [
        ([0] * 20, None),
        ([10] + [0] * 19, 0.01 * 0.95),  # all in the first bucket [0, 0.01]: linear inside it
        ([0, 0, 5, 5] + [0] * 16, 0.05 + 0.025 * 0.9),  # rank 9.5 of 10 in (0.05, 0.075]
        ([0] * 19 + [3], ITL_BUCKETS[-1]),  # +Inf: the highest finite bound, as PromQL answers
    ],
)
def test_histogram_quantile_is_promqls(counts: list[int], want: float | None) -> None:
    got = histogram_quantile(0.95, counts, ITL_BUCKETS)
    assert got == (None if want is None else pytest.approx(want))


@pytest.mark.parametrize(
    ("needs", "startup", "want"),
    [
        ([2, 0, 2], 90.0, [2, 2, 2]),  # a one-minute gap is cheaper kept than restarted
        ([2, 0, 0, 2], 90.0, [2, 0, 0, 2]),  # two minutes: restart
        ([3, 1, 3, 0], 120.0, [3, 3, 3, 0]),  # levels fill independently; the tail is not kept
    ],
)
def test_cheapest_cover(needs: list[int], startup: float, want: list[int]) -> None:
    assert cheapest_cover(needs, 60.0, startup) == want


def test_smoke_the_whole_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    rate = np.where(np.arange(240) < 120, 8.0, 24.0)  # a 3x step after two minutes
    arrivals = np.sort(np.concatenate([s + rng.uniform(0, 1, rng.poisson(r)) for s, r in enumerate(rate)]))
    path = write_trace(tmp_path / "step.csv", arrivals.tolist())
    png = tmp_path / "timeline.png"
    code = bench.main(["--trace", str(path), "--json", "--warmup", "30", "--startup-s", "30", "--png", str(png)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)["policies"]
    assert {"static-peak", "static-mean", "concurrency", "queue", "rightsizer", "oracle"} <= set(result)
    for name, r in result.items():
        assert 0.0 <= r["ttftAttainment"] <= 1.0 and 0.0 <= r["itlAttainment"] <= 1.0, name
        assert r["gpuHours"] > 0, name
    assert result["static-peak"]["ttftAttainment"] >= result["static-mean"]["ttftAttainment"]
    assert result["oracle"]["ttftAttainment"] >= 0.99
    assert png.stat().st_size > 10_000


def step_trace(tmp_path: Path, low: float = 20.0, high: float = 60.0, prompt: int = 2000) -> Path:
    """A 3x load step after two minutes, 2,000-token prompts (one to two TP4 replicas' worth at the defaults)."""
    rng = np.random.default_rng(3)
    rate = np.where(np.arange(240) < 120, low, high)
    arrivals = np.sort(np.concatenate([s + rng.uniform(0, 1, rng.poisson(r)) for s, r in enumerate(rate)]))
    return write_trace(tmp_path / "step.csv", arrivals.tolist(), prompt=prompt)


def run_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> dict[str, dict[str, float]]:
    argv = ["--trace", str(path), "--json", "--warmup", "30", "--startup-s", "30", "--no-png", *extra]
    assert bench.main(argv) == 0
    result: dict[str, dict[str, float]] = json.loads(capsys.readouterr().out)["policies"]
    return result


def test_model_error_one_changes_nothing_for_any_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = step_trace(tmp_path)
    assert run_json(capsys, path, "--model-error", "1,1") == run_json(capsys, path)


def test_slower_replicas_than_the_model_cost_the_oracle_more_and_the_model_driven_policies_slo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Twice step_trace's default load: a replica is TP4 for these prompts, so at the default load the oracle's whole
    # replicas cannot show a 40 % faster one (one fewer replica is not enough).
    path = step_trace(tmp_path, low=40.0, high=120.0)
    policies = "static-peak,oracle"
    believed = run_json(capsys, path, "--policies", policies)
    slower = run_json(capsys, path, "--policies", policies, "--model-error", "1.6,1.6")
    faster = run_json(capsys, path, "--policies", policies, "--model-error", "0.6,0.6")
    # The oracle knows the true speed: it buys more replicas for slow ones, fewer for fast ones.
    assert slower["oracle"]["gpuHours"] > believed["oracle"]["gpuHours"] > faster["oracle"]["gpuHours"]
    # static-peak sizes with the model: the same GPU-hours whatever the truth, and slow replicas miss the SLO.
    assert slower["static-peak"]["gpuHours"] == believed["static-peak"]["gpuHours"] == faster["static-peak"]["gpuHours"]
    assert slower["static-peak"]["ttftAttainment"] < 0.9 < 0.99 < believed["static-peak"]["ttftAttainment"]


def test_the_simulated_replica_runs_at_the_injected_speed(tmp_path: Path) -> None:
    args = bench.build_parser().parse_args(["--trace", str(step_trace(tmp_path)), "--model-error", "1.5,0.8"])
    trace = bench.load_trace(args)
    setup = bench.plan_setup(args, trace)
    believed = setup.replica
    assert setup.engine.step(32, 2000, 0, 0, None) == pytest.approx(0.8 * believed.step_seconds(32, 2000))
    prompt_cost = believed.step_seconds(32, 2000, 1000, 0) - believed.step_seconds(32, 2000)
    want = 0.8 * believed.step_seconds(32, 2000) + 1.5 * prompt_cost
    assert setup.engine.step(32, 2000, 1000, 0, None) == pytest.approx(want)
    # the policies' capacity is the model's, not the truth's
    assert setup.capacity_rps == max_request_rate(believed, setup.input_tokens, setup.output_tokens, setup.slo)


@pytest.mark.parametrize("text", ["0,1", "-1,1", "1,2,3", "fast", "inf,1"])
def test_model_error_refuses_what_is_not_two_positive_factors(text: str) -> None:
    with pytest.raises(Exception, match="PREFILL,DECODE"):
        bench.model_error(text)


def test_calibration_recovers_the_slo_the_model_alone_loses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Replicas 60 % slower than the model: rightsizer planning with the model alone under-provisions; fed by
    self-calibration (as the operator is), it learns the speed from the windows and holds the SLO."""
    path = step_trace(tmp_path)
    got = run_json(capsys, path, "--policies", "rightsizer,rightsizer-model", "--model-error", "1.6,1.6")
    assert got["rightsizer"]["ttftAttainment"] > got["rightsizer-model"]["ttftAttainment"]
    assert got["rightsizer"]["gpuHours"] > got["rightsizer-model"]["gpuHours"]
