"""scaling.calibration: per-deployment correction factors from the deployment's own metrics windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rightsizer.facts import gpus
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.perf import Replica, Slo, Traffic, build_replica, max_request_rate, predict
from rightsizer.scaling.calibration import ALPHA, MEASURED_WEIGHT, SUSTAIN_S, Calibration, Filter, observe, restored
from rightsizer.scaling.window import WindowStats
from tests.unit.helpers import facts_of


@pytest.fixture(scope="module")
def model() -> Replica:
    facts = facts_of("meta-llama/Llama-3.1-8B-Instruct")
    settings = EngineSettings(1, 1, 64, 8192, 16384, 0.9, "bfloat16", "auto", WeightFormat.NONE)
    gpu = gpus.lookup("H100")
    return build_replica(facts, settings, gpu, replica_memory(facts, settings, gpu, profile_for("0.19.0")))


def window(
    truth: Replica,
    rate: float,
    prompt: int = 2000,
    output: int = 200,
    *,
    pods: int = 1,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> WindowStats:
    """A window whose mean latencies are what `truth` does at this load (times a log-normal noise)."""
    p = predict(truth, Traffic(prompt, output, request_rate=rate))

    def jitter() -> float:
        return float(np.exp(rng.normal(0, noise))) if rng is not None else 1.0

    return WindowStats(
        pods=pods,
        request_rate=rate * pods,
        ttft_p95_s=p.ttft.p95,
        itl_p95_s=p.itl.p95,
        waiting=0.0,
        running=p.running * pods,
        kv_usage=0.3,
        mean_prompt_tokens=float(prompt),
        mean_generation_tokens=float(output),
        finished=rate * pods * 60,
        ttft_mean_s=p.ttft.mean * jitter(),
        itl_mean_s=p.itl.mean * jitter(),
    )


def run(model: Replica, truth: Replica, windows: int, **kw: object) -> Calibration:
    state = Calibration()
    for i in range(windows):
        state = observe(state, window(truth, **kw), model, now=15.0 * i, window_s=15.0)  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize(("prefill", "decode"), [(1.4, 1.4), (0.7, 0.7), (1.5, 0.8), (0.8, 1.3)])
def test_factors_converge_to_the_true_speed_within_ten_percent(model: Replica, prefill: float, decode: float) -> None:
    state = run(model, model.scaled(prefill, decode), 12, rate=2.0)
    assert state.prefill.factor == pytest.approx(prefill, rel=0.10)
    assert state.decode.factor == pytest.approx(decode, rel=0.10)
    assert state.samples == 12
    # The corrected model predicts what the truth does, within a few per cent.
    assert state.last is not None and state.last.corrected_itl_s is not None and state.last.corrected_ttft_s
    assert state.last.corrected_itl_s == pytest.approx(state.last.observed_itl_s, rel=0.05)
    assert state.last.corrected_ttft_s == pytest.approx(state.last.observed_ttft_s, rel=0.05)


def test_early_windows_move_the_factor_only_part_of_the_way(model: Replica) -> None:
    one = run(model, model.scaled(2.0, 2.0), 1, rate=2.0)
    assert 1.0 < one.decode.factor < 1.5  # a single window is weighed against the model (ALPHA of the way)
    assert one.confidence < 0.5


def test_a_model_that_is_right_stays_right_and_becomes_confident(model: Replica) -> None:
    state = run(model, model, 20, rate=2.0)
    assert state.prefill.factor == pytest.approx(1.0, abs=1e-6) and state.decode.factor == pytest.approx(1.0, abs=1e-6)
    assert state.confidence > 0.9
    assert state.corrected(model).step_seconds(8, 1000) == pytest.approx(model.step_seconds(8, 1000))
    assert state.accurate(now=1000.0)[0] is True


def test_noisy_windows_still_converge_and_confidence_reflects_the_noise(model: Replica) -> None:
    truth = model.scaled(1.4, 1.4)
    quiet = run(model, truth, 30, rate=2.0, noise=0.02, rng=np.random.default_rng(1))
    noisy = run(model, truth, 30, rate=2.0, noise=0.15, rng=np.random.default_rng(1))
    assert quiet.decode.factor == pytest.approx(1.4, rel=0.05)
    assert noisy.decode.factor == pytest.approx(1.4, rel=0.15)
    assert noisy.confidence < quiet.confidence


def test_idle_and_saturated_windows_are_no_evidence(model: Replica) -> None:
    state = run(model, model.scaled(1.4, 1.4), 6, rate=2.0)
    idle = WindowStats(1, 0.0, None, None, 0.0, 0.0, None, None, None, finished=0.0)
    after = observe(state, idle, model, now=1000.0)
    assert after.prefill == state.prefill and after.decode == state.decode
    assert after.last is not None and after.last.skipped is not None and "idle" in after.last.skipped
    few = WindowStats(1, 0.1, 0.2, 0.02, 0.0, 1.0, None, 2000.0, 200.0, finished=3.0, ttft_mean_s=9.0, itl_mean_s=9.0)
    assert observe(state, few, model, now=1001.0).decode == state.decode  # a just-restarted pod's handful
    flooded = window(model, rate=2.0)
    flooded = WindowStats(**{**flooded.__dict__, "request_rate": 500.0})
    assert observe(state, flooded, model, now=1002.0).decode == state.decode


def test_one_wild_window_moves_a_factor_by_a_bounded_step(model: Replica) -> None:
    state = run(model, model, 10, rate=2.0)
    wild = window(model, rate=2.0)
    wild = WindowStats(**{**wild.__dict__, "itl_mean_s": 1000.0, "ttft_mean_s": 1000.0})
    after = observe(state, wild, model, now=1000.0)
    assert 1.0 < after.decode.factor <= 3.0**ALPHA + 1e-9


def test_prediction_accurate_flips_after_a_sustained_disagreement_and_recovers(model: Replica) -> None:
    truth = model.scaled(1.6, 1.6)
    state = Calibration()
    assert state.accurate(0.0)[0] is None
    times = np.arange(0.0, SUSTAIN_S + 60.0, 15.0)
    for t in times[:4]:
        state = observe(state, window(truth, rate=2.0), model, now=float(t))
    assert state.accurate(float(times[3]))[0] is True  # outside, but not for long yet
    for t in times[4:]:
        state = observe(state, window(truth, rate=2.0), model, now=float(t))
    ok, why = state.accurate(float(times[-1]))
    assert ok is False and "× the predicted" in why
    back = observe(state, window(model, rate=2.0), model, now=float(times[-1]) + 15.0)
    assert back.accurate(float(times[-1]) + 15.0)[0] is True


def test_restart_continues_from_the_recorded_factors(model: Replica) -> None:
    state = run(model, model.scaled(1.4, 0.8), 20, rate=2.0)
    again = restored(state.prefill.factor, state.decode.factor, state.samples, state.confidence)
    assert again.prefill.factor == pytest.approx(state.prefill.factor)
    assert again.decode.factor == pytest.approx(state.decode.factor)
    assert again.confidence == pytest.approx(state.confidence, abs=0.02)
    assert restored(math.nan, 1.0, 5, 0.5).prefill == Filter()


def test_filter_confidence_is_zero_before_evidence() -> None:
    assert Filter().confidence == 0.0 and Filter().factor == 1.0


def test_overlapping_windows_count_for_their_new_data_only(model: Replica) -> None:
    """Four passes 15 s apart over 60 s windows see one window's worth of new requests: together they move a factor
    as far as one fresh window does."""
    truth = model.scaled(1.4, 1.4)
    fresh = observe(observe(Calibration(), window(truth, rate=2.0), model, 0.0), window(truth, rate=2.0), model, 60.0)
    overlapping = observe(Calibration(), window(truth, rate=2.0), model, 0.0)
    for t in (15.0, 30.0, 45.0, 60.0):
        overlapping = observe(overlapping, window(truth, rate=2.0), model, t)
    assert overlapping.decode.factor == pytest.approx(fresh.decode.factor, rel=0.02)
    assert observe(fresh, window(truth, rate=2.0), model, 60.0).decode == fresh.decode  # the same window again


def test_a_slower_fleet_near_its_true_capacity_does_not_drive_the_factors_apart(model: Replica) -> None:
    """Near saturation the TTFT is mostly waiting, priced with the decode factor: counted as prefill evidence it
    drove the prefill factor to its bound while the decode factor overshot. Such windows are skipped."""
    truth = model.scaled(1.4, 1.4)
    near = 0.9 * max_request_rate(truth, 2000, 200, Slo(ttft_p95_s=30.0))
    state = run(model, truth, 40, rate=near)
    assert 0.7 < state.prefill.factor < 2.0
    assert state.decode.factor == pytest.approx(1.4, rel=0.15)


def test_a_confident_calibration_measures_the_speed_and_narrows_the_edge(model: Replica) -> None:
    """Once both factors are known, the corrected replica is at a measured speed (its slack on the 5 % grid) and its
    slow edges are the within-deployment ones: it serves more within the SLO than the same speed guessed."""
    state = run(model, model.scaled(1.3, 1.3), 20, rate=2.0)
    measured = state.corrected(model)
    assert measured.speed_slack is not None and 1.0 <= measured.speed_slack <= 1.5
    assert round(measured.speed_slack * 20, 6) == round(measured.speed_slack * 20)
    guessed = model.scaled(measured.prefill_scale, measured.decode_scale)
    slo = Slo(ttft_p95_s=0.4)  # the TTFT edge binds here (at this length an ITL target meets the batch cap first)
    assert max_request_rate(measured, 2000, 200, slo) > 1.2 * max_request_rate(guessed, 2000, 200, slo)
    assert predict(measured, Traffic(2000, 200, request_rate=2.0)).itl.p95 == pytest.approx(
        predict(guessed, Traffic(2000, 200, request_rate=2.0)).itl.p95
    )  # the central estimate is the same speed


def test_a_factor_without_evidence_leaves_the_speed_guessed(model: Replica) -> None:
    """Windows where prompts dominate every step move the prefill factor only: with the decode factor unmeasured
    the corrected replica keeps the cross-source edge."""
    only_prefill = Calibration(prefill=Filter().update(math.log(1.2)).update(math.log(1.2)))
    corrected = only_prefill.corrected(model)
    assert corrected.prefill_scale > 1.0 and corrected.decode_scale == 1.0 and corrected.speed_slack is None


def test_the_factors_carried_to_another_pool_keep_its_cross_source_edge(model: Replica) -> None:
    """The overflow pool's replica runs at the same factors, but its GPU and layout were not what was measured."""
    state = run(model, model.scaled(1.3, 1.3), 20, rate=2.0)
    other = model.with_limits(max_num_seqs=32)
    carried = state.transferred(other)
    assert carried.speed_slack is None
    assert (carried.prefill_scale, carried.decode_scale) == (
        state.corrected(other).prefill_scale,
        state.corrected(other).decode_scale,
    )
    assert Calibration().transferred(other) is other


def test_a_speed_counts_as_measured_only_after_a_few_windows_of_evidence(model: Replica) -> None:
    """One window's half-width is its own distance from the model, not a measure of doubt: the first windows
    correct the speed but keep the cross-source edge; after MEASURED_WEIGHT of evidence the edge narrows."""
    early = run(model, model.scaled(1.3, 1.3), 2, rate=2.0)
    assert early.decode.samples == 2 and early.corrected(model).speed_slack is None
    assert early.corrected(model).decode_scale > 1.0
    later = run(model, model.scaled(1.3, 1.3), 6, rate=2.0)
    assert min(later.prefill.weight, later.decode.weight) >= MEASURED_WEIGHT
    assert later.corrected(model).speed_slack is not None
