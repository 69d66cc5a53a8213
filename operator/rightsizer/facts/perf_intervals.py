"""Held-out error intervals of the performance model, by kind of point. Generated: do not edit by hand.

Made by `bench/latency_model.py --intervals` (docs/performance-model.md, "Intervals") from leave-one-source-out
residuals on bench/data/latency-published.csv: every published point predicted by factors fitted without its
source. `slow` is the ratio measured / predicted that 90 % of the kind's points stay under (at least 1: the
pessimistic edge never undercuts the estimate), `fast` the one 90 % stay above (at most 1).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    fast: float
    slow: float
    points: int
    basis: str


INTERVALS: dict[tuple[str, str, str], Interval] = {
    ("itl", "all", "1-8"): Interval(
        0.88, 1.175, 15, "itl of all models at 1-8 concurrent requests: 15 held-out points"
    ),
    ("itl", "all", "16-32"): Interval(
        1.0, 1.178, 7, "itl of all models at 16-32 concurrent requests: 7 held-out points"
    ),
    ("itl", "all", "64+"): Interval(
        0.766, 1.963, 127, "itl of all models at 64+ concurrent requests: 127 held-out points"
    ),
    ("itl", "all", "all"): Interval(
        0.791, 1.944, 149, "itl of all models at all concurrent requests: 149 held-out points"
    ),
    ("itl", "dense", "1-8"): Interval(
        0.88, 1.076, 8, "itl of dense models at 1-8 concurrent requests: 8 held-out points"
    ),
    ("itl", "dense", "16-32"): Interval(
        1.0, 1.178, 7, "itl of dense models at 16-32 concurrent requests: 7 held-out points"
    ),
    ("itl", "dense", "64+"): Interval(
        0.653, 1.636, 39, "itl of dense models at 64+ concurrent requests: 39 held-out points"
    ),
    ("itl", "hybrid", "1-8"): Interval(
        0.834, 1.168, 6, "itl of hybrid models at 1-8 concurrent requests: 6 held-out points"
    ),
    ("itl", "hybrid", "64+"): Interval(
        0.803, 2.053, 44, "itl of hybrid models at 64+ concurrent requests: 44 held-out points"
    ),
    ("itl", "mla", "1-8"): Interval(1.0, 1.623, 1, "itl of mla models at 1-8 concurrent requests: 1 held-out points"),
    ("itl", "mla", "64+"): Interval(
        0.934, 1.858, 15, "itl of mla models at 64+ concurrent requests: 15 held-out points"
    ),
    ("itl", "moe", "64+"): Interval(
        0.816, 1.988, 29, "itl of moe models at 64+ concurrent requests: 29 held-out points"
    ),
    ("ttft", "all", "1-8"): Interval(
        0.609, 1.259, 23, "ttft of all models at 1-8 concurrent requests: 23 held-out points"
    ),
    ("ttft", "all", "16-32"): Interval(
        1.0, 1.556, 2, "ttft of all models at 16-32 concurrent requests: 2 held-out points"
    ),
    ("ttft", "all", "64+"): Interval(1.0, 4.656, 1, "ttft of all models at 64+ concurrent requests: 1 held-out points"),
    ("ttft", "all", "all"): Interval(
        0.614, 1.542, 26, "ttft of all models at all concurrent requests: 26 held-out points"
    ),
    ("ttft", "dense", "1-8"): Interval(
        0.808, 1.116, 6, "ttft of dense models at 1-8 concurrent requests: 6 held-out points"
    ),
    ("ttft", "hybrid", "1-8"): Interval(
        0.578, 1.222, 16, "ttft of hybrid models at 1-8 concurrent requests: 16 held-out points"
    ),
    ("ttft", "hybrid", "16-32"): Interval(
        1.0, 1.556, 2, "ttft of hybrid models at 16-32 concurrent requests: 2 held-out points"
    ),
    ("ttft", "hybrid", "64+"): Interval(
        1.0, 4.656, 1, "ttft of hybrid models at 64+ concurrent requests: 1 held-out points"
    ),
    ("ttft", "mla", "1-8"): Interval(1.0, 1.467, 1, "ttft of mla models at 1-8 concurrent requests: 1 held-out points"),
}
