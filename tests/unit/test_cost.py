"""Cost: GPUs held by pods, price per hour, GPU-hours over the last day, dollars per million tokens (kube/cost.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rightsizer.facts.gpus import lookup
from rightsizer.kube.cost import (
    MAX_USAGE_ENTRIES,
    Usage,
    cost_status,
    dollars_per_million_tokens,
    gpus_in_use,
    last_day,
    record,
)
from rightsizer.sizing.pools import GpuPool

H200 = GpuPool("h200", lookup("NVIDIA-H200"), 8, None, price_per_gpu_hour=3.5)
H100 = GpuPool("h100", lookup("NVIDIA-H100-80GB-HBM3"), 8, None)  # no declared price
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(pool: str, gpus: int | str, node: str | None = "n1", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"rightsizer.dev/pool": pool}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": phase},
    }


def test_bound_pods_hold_gpus_at_their_pools_price() -> None:
    pods = [pod("h200", 2), pod("h200", 2, phase="Pending"), pod("h200", 2, node=None)]  # the last is not bound
    use = gpus_in_use(pods, [H200, H100], default_price=1.0)
    assert use.by_product == {"NVIDIA-H200": 4} and use.total == 4
    assert use.price_per_hour == pytest.approx(4 * 3.5) and use.price_source == "declared"


def test_an_unpriced_pool_takes_the_default_and_says_so() -> None:
    use = gpus_in_use([pod("h100", 8)], [H200, H100], default_price=2.0)
    assert (use.price_per_hour, use.price_source) == (16.0, "default")
    mixed = gpus_in_use([pod("h100", 8), pod("h200", 1)], [H200, H100], default_price=2.0)
    assert mixed.by_product == {"NVIDIA-H100-80GB-HBM3": 8, "NVIDIA-H200": 1}
    assert (mixed.price_per_hour, mixed.price_source) == (16.0 + 3.5, "mixed")


def test_finished_pods_and_odd_requests_hold_nothing() -> None:
    pods = [pod("h200", 8, phase="Succeeded"), pod("h200", 8, phase="Failed"), pod("h200", "1.5"), pod("h200", 0)]
    use = gpus_in_use(pods, [H200], default_price=1.0)
    assert use.total == 0 and use.price_per_hour == 0


def test_the_history_records_changes_only_and_forgets_after_a_day() -> None:
    history = record([], T0, 2)
    history = record(history, T0 + timedelta(minutes=5), 2)  # no change: no entry
    assert history == [Usage(T0, 2)]
    history = record(history, T0 + timedelta(hours=6), 4)
    history = record(history, T0 + timedelta(hours=30), 4)
    # the 2-GPU entry ended at 06:00, more than a day before 06:00 the next day + ... kept only while it covers
    assert history == [Usage(T0 + timedelta(hours=6), 4)]


def test_the_history_is_bounded() -> None:
    history: list[Usage] = []
    for minute in range(2 * MAX_USAGE_ENTRIES):
        history = record(history, T0 + timedelta(minutes=minute), minute % 2)
    assert len(history) == MAX_USAGE_ENTRIES


def test_gpu_hours_over_the_last_day_and_the_saving_against_peak() -> None:
    """2 GPUs for 12 h, 8 for 4 h, 2 for 8 h: 24 + 32 + 16 = 72 GPU-hours; at peak all day 8 × 24 = 192."""
    history = [Usage(T0, 2), Usage(T0 + timedelta(hours=12), 8), Usage(T0 + timedelta(hours=16), 2)]
    day = last_day(history, T0 + timedelta(hours=24))
    assert (day.gpu_hours, day.covered_hours, day.peak_gpus) == (72.0, 24.0, 8)
    assert day.saved_gpu_hours == 192.0 - 72.0


def test_only_the_last_day_counts_and_a_young_deployment_covers_less() -> None:
    history = [Usage(T0, 8), Usage(T0 + timedelta(hours=30), 2)]
    day = last_day(history, T0 + timedelta(hours=36))  # window 12:00 day 1 .. 12:00 day 2
    assert day.gpu_hours == 8 * 18 + 2 * 6 and day.covered_hours == 24.0
    young = last_day([Usage(T0, 4)], T0 + timedelta(hours=3))
    assert (young.gpu_hours, young.covered_hours, young.saved_gpu_hours) == (12.0, 3.0, 0.0)


def test_dollars_per_million_output_tokens_at_the_observed_load() -> None:
    # $14/hour at 1,000 output tokens/s: 3.6 M tokens an hour, so $3.888… per million
    assert dollars_per_million_tokens(14.0, 1000.0) == pytest.approx(14 / 3.6)
    assert dollars_per_million_tokens(14.0, 0.0) is None and dollars_per_million_tokens(14.0, None) is None


def test_status_cost_from_pods_history_and_the_autoscalers_window() -> None:
    previous = {"usage": [{"time": "2026-01-01T00:00:00Z", "gpus": 2}, {"time": "bad", "gpus": 9}, {"gpus": 1}]}
    performance = {"requestRatePerReplica": 2.0, "meanOutputTokens": 250.0}  # 500 tokens/s a replica
    cost = cost_status(
        [pod("h200", 2), pod("h200", 2)],
        [H200],
        default_price=1.0,
        previous=previous,
        performance=performance,
        ready_replicas=2,
        now="2026-01-01T10:30:00Z",
    )
    wire = cost.to_wire()
    assert wire["gpus"] == [{"product": "NVIDIA-H200", "gpus": 4}]
    assert wire["pricePerHour"] == 14.0 and wire["priceSource"] == "declared"
    # 2 GPUs from midnight; 4 from 10:30, after the last full hour (10:00) the day's figures are computed up to
    assert wire["dayAsOf"] == "2026-01-01T10:00:00Z"
    assert (wire["gpuHoursLastDay"], wire["coveredHours"], wire["peakGpusLastDay"]) == (20.0, 10.0, 2)
    assert wire["usage"] == [{"time": "2026-01-01T00:00:00Z", "gpus": 2}, {"time": "2026-01-01T10:30:00Z", "gpus": 4}]
    assert wire["outputTokensPerSecond"] == 1000.0
    assert wire["dollarsPerMillionTokens"] == pytest.approx(14 / 3.6)


def test_status_cost_is_stable_within_the_hour() -> None:
    """Nothing in it moves with the clock between two resyncs in the same hour: no status write per resync."""

    def at(now: str, previous: dict[str, Any] | None) -> dict[str, Any]:
        cost = cost_status(
            [pod("h200", 2)], [H200], default_price=1.0, previous=previous, performance=None, ready_replicas=1, now=now
        )
        return cost.to_wire()

    first = at("2026-01-01T10:05:00Z", None)
    assert at("2026-01-01T10:59:59Z", first) == first
    assert at("2026-01-01T11:00:00Z", first)["gpuHoursLastDay"] == pytest.approx(2 * 55 / 60, abs=1e-4)
    assert "outputTokensPerSecond" not in first and "dollarsPerMillionTokens" not in first  # no metrics window
