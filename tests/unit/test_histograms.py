"""Windowed counter and histogram math against results worked out by hand with PromQL's rules."""

from __future__ import annotations

import math

import pytest

from rightsizer.scaling.histograms import Histogram, counter_increase, histogram_increase, mean, merge, quantile

INF = math.inf


def h(*buckets: tuple[float, float], total: float = 0.0) -> Histogram:
    return Histogram.of(buckets, total)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # rank 15 of 30 falls in (0.1, 0.5] holding observations 11..20: 0.1 + 0.4 × 5/10
        (0.5, [(0.1, 10), (0.5, 20), (1.0, 30), (INF, 30)], 0.3),
        # rank 28.5: (0.5, 1] holds 21..30 -> 0.5 + 0.5 × 8.5/10
        (0.95, [(0.1, 10), (0.5, 20), (1.0, 30), (INF, 30)], 0.925),
        # the first bucket's lower bound is 0
        (0.5, [(0.2, 10), (INF, 10)], 0.1),
        # a rank in +Inf: the highest finite bound is all that is known
        (0.95, [(1.0, 5), (INF, 10)], 1.0),
        # a rank exactly at a bucket's cumulative count ends in that bucket
        (0.5, [(1.0, 5), (2.0, 10), (INF, 10)], 1.0),
        # non-monotonic counts (a scrape racing an observation) are made monotonic first
        (0.5, [(1.0, 6), (2.0, 5), (4.0, 10), (INF, 10)], 5 / 6),
        # a first bucket with a non-positive upper bound returns that bound
        (0.1, [(0.0, 4), (1.0, 10), (INF, 10)], 0.0),
    ],
)
def test_quantile_follows_histogram_quantile(q: float, buckets: list[tuple[float, float]], expected: float) -> None:
    assert quantile(q, h(*buckets)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "histogram",
    [
        None,
        h((1.0, 0), (INF, 0)),  # no observations
        h((1.0, 3), (2.0, 5)),  # no +Inf bucket
        h((INF, 3)),  # one bucket
    ],
)
def test_quantile_is_none_without_observations_to_rank(histogram: Histogram | None) -> None:
    assert quantile(0.95, histogram) is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], 0.0),
        ([5.0], 0.0),
        ([1.0, 4.0, 9.0], 8.0),
        ([10.0, 12.0, 3.0, 5.0], 2.0 + 3.0 + 2.0),  # restarted between 12 and 3: the 3 counts
        ([7.0, 7.0], 0.0),
    ],
)
def test_counter_increase_counts_restarts_from_zero(values: list[float], expected: float) -> None:
    assert counter_increase(values) == expected


def test_histogram_increase_is_the_per_bucket_difference() -> None:
    before = h((0.1, 2), (1.0, 5), (INF, 6), total=3.0)
    after = h((0.1, 4), (1.0, 9), (INF, 12), total=7.5)
    grown = histogram_increase([before, after])
    assert grown == Histogram(((0.1, 2), (1.0, 4), (INF, 6)), 4.5, 6)
    assert mean(grown) == pytest.approx(0.75)


def test_histogram_increase_across_a_restart_counts_what_the_new_process_saw() -> None:
    a = h((1.0, 10), (INF, 10), total=5.0)
    b = h((1.0, 12), (INF, 14), total=8.0)  # +2 / +4
    c = h((1.0, 1), (INF, 2), total=1.5)  # restarted: 1 / 2 since
    d = h((1.0, 3), (INF, 3), total=2.0)  # +2 / +1
    grown = histogram_increase([a, b, c, d])
    assert grown is not None
    assert grown.buckets == ((1.0, 5.0), (INF, 7.0))
    assert grown.sum == pytest.approx(5.0) and grown.count == 7.0


def test_histogram_increase_restarts_when_the_bucket_bounds_change() -> None:
    old = h((1.0, 10), (INF, 10))
    new = h((0.5, 1), (1.0, 2), (INF, 2))
    newer = h((0.5, 2), (1.0, 4), (INF, 5))
    grown = histogram_increase([old, new, newer])
    assert grown is not None
    assert grown.buckets == ((0.5, 2.0), (1.0, 4.0), (INF, 5.0))


def test_histogram_increase_needs_two_samples() -> None:
    assert histogram_increase([h((1.0, 1), (INF, 1))]) is None


def test_merge_sums_by_bound() -> None:
    merged = merge([h((1.0, 1), (INF, 2), total=1.0), h((1.0, 3), (INF, 3), total=2.0)])
    assert merged == Histogram(((1.0, 4.0), (INF, 5.0)), 3.0, 5.0)
    assert merge([]) is None
    # the p95 of the merged increases is what histogram_quantile(sum by (le) (rate(...))) gives
    assert quantile(0.5, merged) == pytest.approx(2.5 / 4)
