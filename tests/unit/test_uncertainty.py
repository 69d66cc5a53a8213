"""The performance model's held-out intervals (perf.uncertainty) and what the SLO checks do with them."""

from __future__ import annotations

import math

import pytest

from rightsizer.facts.perf_intervals import INTERVALS, MEASURED_INTERVALS, Interval
from rightsizer.perf import Slo, Traffic, predict
from rightsizer.perf.uncertainty import ALL, BANDS, MIN_POINTS, band_of, family_of, interval, measured_interval
from tests.unit.helpers import facts_of
from tests.unit.test_perf import LLAMA_8B, replica


def test_families_follow_the_architecture() -> None:
    assert family_of(facts_of(LLAMA_8B)) == "dense"
    assert family_of(facts_of("mistralai/Mixtral-8x7B-Instruct-v0.1")) == "moe"
    assert family_of(facts_of("deepseek-ai/DeepSeek-V3")) == "mla"
    assert family_of(facts_of("openai/gpt-oss-20b")) == "hybrid"  # sliding-window layers beside full ones


@pytest.mark.parametrize(("load", "band"), [(1, "1-8"), (8, "1-8"), (9, "16-32"), (32, "16-32"), (33, "64+")])
def test_bands(load: float, band: str) -> None:
    assert band_of(load) == band


def test_the_table_is_pessimistic_by_construction() -> None:
    assert INTERVALS, "facts/perf_intervals.py is empty: run bench/latency_model.py --loso --intervals"
    for key, cell in INTERVALS.items():
        assert cell.fast <= 1.0 <= cell.slow, key
        assert cell.points > 0 and str(cell.points) in cell.basis, key
    for metric in ("itl", "ttft"):
        assert (metric, ALL, ALL) in INTERVALS  # the last fallback exists


def test_a_kind_with_few_points_borrows_a_wider_one() -> None:
    sparse = [(m, f, b) for (m, f, b), cell in INTERVALS.items() if f != ALL and b != ALL and cell.points < MIN_POINTS]
    assert sparse, "every cell is well populated: this test needs a sparse one"
    metric, family, band = sparse[0]
    load = next(middle for _, name, middle in BANDS if name == band)
    got = interval(metric, family, load)
    assert got != INTERVALS[(metric, family, band)]
    assert got in (INTERVALS.get((metric, ALL, band)), INTERVALS[(metric, ALL, ALL)])


def test_between_bands_the_factor_moves_smoothly() -> None:
    """No cliff where a band ends: the slow factor at 32 and at 33 concurrent requests is nearly the same."""
    below, above = interval("itl", "dense", 32.0), interval("itl", "dense", 33.0)
    assert math.isclose(below.slow, above.slow, rel_tol=0.05)
    ends = sorted((interval("itl", "dense", middle).slow for _, _, middle in BANDS))
    assert ends[0] <= interval("itl", "dense", 12.0).slow <= ends[-1]


def test_a_gpu_without_published_measurements_gets_the_wider_of_its_family_and_all_families() -> None:
    for family in ("dense", "moe", "mla", "hybrid"):
        for load in (2.0, 20.0, 100.0):
            own, pooled = interval("itl", family, load), interval("itl", ALL, load)
            assert interval("itl", family, load, calibrated=False).slow == max(own.slow, pooled.slow)
    assert interval("itl", "dense", 100.0, calibrated=False).slow > interval("itl", "dense", 100.0).slow


def test_every_prediction_carries_its_slow_edge_and_the_slo_is_checked_against_it() -> None:
    r = replica(LLAMA_8B, "H200", 1)
    p = predict(r, Traffic(1000, 250, concurrency=48))
    cell: Interval = interval("itl", r.family, 48)
    assert p.itl_p95_high == pytest.approx(p.itl.p95 * cell.slow)
    assert p.ttft_p95_high >= p.ttft.p95 and p.itl_basis == cell.basis
    between = (p.itl.p95 + p.itl_p95_high) / 2  # met by the central estimate, missed by the slow edge
    assert cell.slow > 1.0 and not Slo(itl_p95_s=between).met_by(p)
    assert Slo(itl_p95_s=p.itl_p95_high * 1.001).met_by(p)


def test_step_terms_add_up_to_the_step() -> None:
    r = replica(LLAMA_8B, "H200", 2)
    for decode, context, prefill in ((1, 100, 0), (64, 2000, 0), (32, 1500, 2048)):
        terms = r.step_terms(decode, context, prefill)
        assert terms.total == pytest.approx(r.step_seconds(decode, context, prefill))
        assert min(terms.linear, terms.attention, terms.communication, terms.overhead) >= 0
    assert r.step_terms(64, 2000).communication > 0  # TP2 pays all-reduces
    assert replica(LLAMA_8B, "H200", 1).step_terms(64, 2000).communication == 0


def test_the_measured_table_is_pessimistic_and_narrower_than_across_sources() -> None:
    """What a deployment's own speed leaves (MEASURED_INTERVALS) is narrower than the spread between sources it
    replaces: were it not, measuring the speed would not be worth trusting."""
    assert MEASURED_INTERVALS, "facts/perf_intervals.py has no measured table: run bench/latency_model.py --intervals"
    for key, cell in MEASURED_INTERVALS.items():
        assert cell.fast <= 1.0 <= cell.slow, key
    for metric in ("itl", "ttft"):
        assert MEASURED_INTERVALS[(metric, ALL, ALL)].slow < INTERVALS[(metric, ALL, ALL)].slow


def test_a_measured_speed_takes_the_within_deployment_edge_times_its_slack_never_wider_than_the_model() -> None:
    r = replica(LLAMA_8B, "H200", 1)
    traffic = Traffic(1000, 250, concurrency=48)
    guessed = predict(r.scaled(1.2, 1.2), traffic)
    own = measured_interval("itl", r.family, 48)
    measured = predict(r.measured(1.2, 1.2, 1.1), traffic)
    assert measured.itl.p95 == pytest.approx(guessed.itl.p95)
    assert measured.itl_p95_high == pytest.approx(min(guessed.itl_p95_high, guessed.itl.p95 * own.slow * 1.1))
    doubtful = predict(r.measured(1.2, 1.2, 10.0), traffic)
    assert doubtful.itl_p95_high == pytest.approx(guessed.itl_p95_high) and doubtful.itl_basis == guessed.itl_basis
    with pytest.raises(ValueError, match="slack"):
        r.measured(1.2, 1.2, 0.9)
