"""perf.Replica.scaled: the speed factors that calibration fits and the autoscaling benchmark injects."""

from __future__ import annotations

import pytest

from rightsizer.facts import gpus
from rightsizer.facts.vllm_profiles import profile_for
from rightsizer.model.config import WeightFormat
from rightsizer.model.memory import EngineSettings, replica_memory
from rightsizer.perf import Replica, Slo, build_replica, max_request_rate
from tests.unit.helpers import facts_of


def replica(tp: int = 1, pp: int = 1) -> Replica:
    facts = facts_of("meta-llama/Llama-3.1-8B-Instruct")
    settings = EngineSettings(tp, pp, 256, 8192, 16384, 0.9, "bfloat16", "auto", WeightFormat.NONE)
    gpu = gpus.lookup("H100")
    return build_replica(facts, settings, gpu, replica_memory(facts, settings, gpu, profile_for("0.19.0")))


@pytest.mark.parametrize("shape", [(1, 1), (2, 2)])
def test_unit_factors_are_the_model_bit_for_bit(shape: tuple[int, int]) -> None:
    r = replica(*shape)
    same = r.scaled(1.0, 1.0)
    cases: list[tuple[float, float, float, float, float | None]] = [
        (0, 0.0, 4000, 0.0, 1),
        (64, 1500.0, 0.0, 0.0, None),
        (64, 1500.0, 2000, 4096, 2.0),
        (1, 10.0, 1, 0.0, None),
    ]
    for args in cases:
        assert same.step_times(*args) == r.step_times(*args)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2)])
def test_decode_and_prefill_parts_scale_separately(shape: tuple[int, int]) -> None:
    r = replica(*shape)
    s = r.scaled(1.5, 0.7)
    plain = r.step_times(48, 2000.0)
    assert s.step_times(48, 2000.0) == pytest.approx((0.7 * plain[0], 0.7 * plain[1]))
    loaded = r.step_times(48, 2000.0, 3000, 1000, 1)
    got = s.step_times(48, 2000.0, 3000, 1000, 1)
    for i in range(2):
        assert got[i] == pytest.approx(0.7 * plain[i] + 1.5 * (loaded[i] - plain[i]))
    # a pure prefill step: the weight pass is the decode part, the prompt's work the prefill part
    assert s.step_seconds(0, 0.0, 4000) == pytest.approx(
        0.7 * r.step_seconds(0, 0.0) + 1.5 * (r.step_seconds(0, 0.0, 4000) - r.step_seconds(0, 0.0))
    )


def test_a_slower_replica_serves_fewer_requests_within_the_slo() -> None:
    r = replica()
    slo = Slo(ttft_p95_s=1.0, itl_p95_s=0.1)
    rates = [max_request_rate(r.scaled(f, f), 1000, 200, slo) for f in (0.7, 1.0, 1.4)]
    assert rates[0] > rates[1] > rates[2] > 0
    assert max_request_rate(r.scaled(1.0, 1.0), 1000, 200, slo) == rates[1]


@pytest.mark.parametrize("bad", [(0.0, 1.0), (1.0, -2.0), (float("inf"), 1.0), (float("nan"), 1.0)])
def test_factors_must_be_positive_and_finite(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="speed factors"):
        replica().scaled(*bad)
