"""Windowed statistics from Prometheus counters and cumulative histograms, as PromQL computes them. Pure.

The embedded metrics source scrapes vLLM's /metrics itself and keeps a few samples per pod; these functions turn
those samples into what a Prometheus server would answer for `increase(x[w])` and
`histogram_quantile(q, sum by (le) (rate(x_bucket[w])))`, so both sources give the autoscaler the same numbers:

* counter increase with reset handling (promql/functions.go `extrapolatedRate`, without its extrapolation to the
  window's edges: a drop between two samples means the process restarted and counted again from zero);
* a histogram's increase over a window is the increase of each cumulative bucket, `_sum` and `_count`; a restart
  resets every series of the histogram at once, so a drop in `_count` marks a reset of the whole histogram;
* `quantile` follows promql/quantile.go `bucketQuantile` (Prometheus 2.x): linear interpolation inside the bucket
  holding the rank, 0 as the first bucket's lower bound, and the highest finite bound when the rank falls in +Inf.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

INF = math.inf


@dataclass(frozen=True)
class Histogram:
    """A cumulative histogram as exposed: (upper bound `le`, observations ≤ le) sorted by bound, ending at +Inf."""

    buckets: tuple[tuple[float, float], ...]
    sum: float = 0.0
    count: float = 0.0

    @classmethod
    def of(cls, buckets: Iterable[tuple[float, float]], sum_: float = 0.0, count: float | None = None) -> Histogram:
        """From (le, cumulative count) pairs in any order; `count` defaults to the +Inf bucket's."""
        ordered = tuple(sorted(buckets))
        total = count if count is not None else (ordered[-1][1] if ordered and ordered[-1][0] == INF else 0.0)
        return cls(ordered, sum_, total)

    @property
    def bounds(self) -> tuple[float, ...]:
        return tuple(le for le, _ in self.buckets)


def counter_increase(values: Sequence[float]) -> float:
    """How much a counter grew over consecutive samples; a drop is a restart from zero (the new value counts)."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


def _reset(before: Histogram, after: Histogram) -> bool:
    return after.count < before.count or any(
        a < b for (_, a), (_, b) in zip(after.buckets, before.buckets, strict=False)
    )


def histogram_increase(samples: Sequence[Histogram]) -> Histogram | None:
    """The observations made between the first and the last sample (None with fewer than two samples).

    Samples whose bucket bounds differ from the last sample's (a restarted process with other buckets) start the
    count afresh, like a reset."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    totals = [0.0] * len(last.buckets)
    sum_ = count = 0.0
    for before, after in itertools.pairwise(samples):
        if after.bounds != last.bounds:
            continue
        fresh = before.bounds != after.bounds or _reset(before, after)
        base = None if fresh else before
        for i, (_, value) in enumerate(after.buckets):
            totals[i] += value - (base.buckets[i][1] if base else 0.0)
        sum_ += after.sum - (base.sum if base else 0.0)
        count += after.count - (base.count if base else 0.0)
    return Histogram(tuple(zip(last.bounds, totals, strict=True)), sum_, count)


def merge(histograms: Iterable[Histogram]) -> Histogram | None:
    """The sum of histograms with the same bucket bounds (`sum by (le)`); None when there are none. Bounds missing
    from some histograms are kept (Prometheus sums whatever series carry the same `le`)."""
    per_bound: dict[float, float] = {}
    sum_ = count = 0.0
    seen = False
    for h in histograms:
        seen = True
        for le, value in h.buckets:
            per_bound[le] = per_bound.get(le, 0.0) + value
        sum_ += h.sum
        count += h.count
    if not seen:
        return None
    return Histogram(tuple(sorted(per_bound.items())), sum_, count)


def _monotonic(buckets: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cumulative counts never decrease; a scrape that raced an observation can make them (promql ensureMonotonic)."""
    out, highest = [], -INF
    for le, value in buckets:
        highest = max(highest, value)
        out.append((le, highest))
    return out


def quantile(q: float, h: Histogram | None) -> float | None:
    """The q-quantile of the observations (histogram_quantile); None when there are none to rank."""
    if h is None or not h.buckets or h.buckets[-1][0] != INF or len(h.buckets) < 2:
        return None
    buckets = _monotonic(h.buckets)
    observations = buckets[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next((i for i, (_, value) in enumerate(buckets[:-1]) if value >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]  # in the +Inf bucket: the highest finite bound is all that is known
    upper, cumulative = buckets[b]
    if b == 0 and upper <= 0:
        return upper
    lower, below = buckets[b - 1] if b > 0 else (0.0, 0.0)
    return lower + (upper - lower) * ((rank - below) / (cumulative - below))


def mean(h: Histogram | None) -> float | None:
    """Mean observation (`_sum / _count`); None when nothing was observed."""
    if h is None or h.count <= 0:
        return None
    return h.sum / h.count
