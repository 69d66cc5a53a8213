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
        0.669, 1.721, 47, "itl of all models at 1-8 concurrent requests: 47 held-out points"
    ),
    ("itl", "all", "16-32"): Interval(
        0.712, 1.653, 72, "itl of all models at 16-32 concurrent requests: 72 held-out points"
    ),
    ("itl", "all", "64+"): Interval(
        0.57, 1.867, 191, "itl of all models at 64+ concurrent requests: 191 held-out points"
    ),
    ("itl", "all", "all"): Interval(
        0.665, 1.806, 310, "itl of all models at all concurrent requests: 310 held-out points"
    ),
    ("itl", "dense", "1-8"): Interval(
        0.667, 1.077, 33, "itl of dense models at 1-8 concurrent requests: 33 held-out points"
    ),
    ("itl", "dense", "16-32"): Interval(
        0.699, 1.116, 50, "itl of dense models at 16-32 concurrent requests: 50 held-out points"
    ),
    ("itl", "dense", "64+"): Interval(
        0.416, 1.489, 100, "itl of dense models at 64+ concurrent requests: 100 held-out points"
    ),
    ("itl", "hybrid", "1-8"): Interval(
        0.836, 1.169, 6, "itl of hybrid models at 1-8 concurrent requests: 6 held-out points"
    ),
    ("itl", "hybrid", "64+"): Interval(
        0.829, 2.055, 44, "itl of hybrid models at 64+ concurrent requests: 44 held-out points"
    ),
    ("itl", "mla", "1-8"): Interval(1.0, 1.567, 2, "itl of mla models at 1-8 concurrent requests: 2 held-out points"),
    ("itl", "mla", "64+"): Interval(
        0.938, 1.864, 15, "itl of mla models at 64+ concurrent requests: 15 held-out points"
    ),
    ("itl", "moe", "1-8"): Interval(1.0, 2.114, 6, "itl of moe models at 1-8 concurrent requests: 6 held-out points"),
    ("itl", "moe", "16-32"): Interval(
        1.0, 1.929, 22, "itl of moe models at 16-32 concurrent requests: 22 held-out points"
    ),
    ("itl", "moe", "64+"): Interval(
        0.829, 1.996, 32, "itl of moe models at 64+ concurrent requests: 32 held-out points"
    ),
    ("ttft", "all", "1-8"): Interval(
        0.519, 1.99, 63, "ttft of all models at 1-8 concurrent requests: 63 held-out points"
    ),
    ("ttft", "all", "16-32"): Interval(
        1.0, 2.802, 67, "ttft of all models at 16-32 concurrent requests: 67 held-out points"
    ),
    ("ttft", "all", "64+"): Interval(
        0.748, 3.62, 66, "ttft of all models at 64+ concurrent requests: 66 held-out points"
    ),
    ("ttft", "all", "all"): Interval(
        0.675, 2.874, 196, "ttft of all models at all concurrent requests: 196 held-out points"
    ),
    ("ttft", "dense", "1-8"): Interval(
        0.499, 1.812, 31, "ttft of dense models at 1-8 concurrent requests: 31 held-out points"
    ),
    ("ttft", "dense", "16-32"): Interval(
        1.0, 2.296, 43, "ttft of dense models at 16-32 concurrent requests: 43 held-out points"
    ),
    ("ttft", "dense", "64+"): Interval(
        0.765, 3.592, 61, "ttft of dense models at 64+ concurrent requests: 61 held-out points"
    ),
    ("ttft", "hybrid", "1-8"): Interval(
        0.58, 1.116, 23, "ttft of hybrid models at 1-8 concurrent requests: 23 held-out points"
    ),
    ("ttft", "hybrid", "16-32"): Interval(
        1.0, 1.49, 2, "ttft of hybrid models at 16-32 concurrent requests: 2 held-out points"
    ),
    ("ttft", "hybrid", "64+"): Interval(
        1.0, 4.587, 1, "ttft of hybrid models at 64+ concurrent requests: 1 held-out points"
    ),
    ("ttft", "mla", "1-8"): Interval(1.0, 2.034, 3, "ttft of mla models at 1-8 concurrent requests: 3 held-out points"),
    ("ttft", "mla", "64+"): Interval(0.095, 1.0, 1, "ttft of mla models at 64+ concurrent requests: 1 held-out points"),
    ("ttft", "moe", "1-8"): Interval(1.0, 2.502, 6, "ttft of moe models at 1-8 concurrent requests: 6 held-out points"),
    ("ttft", "moe", "16-32"): Interval(
        1.0, 3.116, 22, "ttft of moe models at 16-32 concurrent requests: 22 held-out points"
    ),
    ("ttft", "moe", "64+"): Interval(1.0, 1.844, 3, "ttft of moe models at 64+ concurrent requests: 3 held-out points"),
}

# Once a deployment's own metrics have set its speed (scaling.calibration): what is left.
MEASURED_INTERVALS: dict[tuple[str, str, str], Interval] = {
    ("itl", "all", "1-8"): Interval(
        0.808,
        1.125,
        40,
        "itl of all models at 1-8 concurrent requests: 40 held-out points over their deployment's level",
    ),
    ("itl", "all", "16-32"): Interval(
        0.934,
        1.049,
        70,
        "itl of all models at 16-32 concurrent requests: 70 held-out points over their deployment's level",
    ),
    ("itl", "all", "64+"): Interval(
        0.7,
        1.308,
        171,
        "itl of all models at 64+ concurrent requests: 171 held-out points over their deployment's level",
    ),
    ("itl", "all", "all"): Interval(
        0.763,
        1.209,
        281,
        "itl of all models at all concurrent requests: 281 held-out points over their deployment's level",
    ),
    ("itl", "dense", "1-8"): Interval(
        0.808,
        1.0,
        30,
        "itl of dense models at 1-8 concurrent requests: 30 held-out points over their deployment's level",
    ),
    ("itl", "dense", "16-32"): Interval(
        0.933,
        1.035,
        50,
        "itl of dense models at 16-32 concurrent requests: 50 held-out points over their deployment's level",
    ),
    ("itl", "dense", "64+"): Interval(
        0.7,
        1.289,
        92,
        "itl of dense models at 64+ concurrent requests: 92 held-out points over their deployment's level",
    ),
    ("itl", "hybrid", "1-8"): Interval(
        0.452,
        1.0,
        3,
        "itl of hybrid models at 1-8 concurrent requests: 3 held-out points over their deployment's level",
    ),
    ("itl", "hybrid", "64+"): Interval(
        0.715,
        1.562,
        39,
        "itl of hybrid models at 64+ concurrent requests: 39 held-out points over their deployment's level",
    ),
    ("itl", "mla", "1-8"): Interval(
        1.0,
        1.311,
        1,
        "itl of mla models at 1-8 concurrent requests: 1 held-out points over their deployment's level",
    ),
    ("itl", "mla", "64+"): Interval(
        0.567,
        1.528,
        14,
        "itl of mla models at 64+ concurrent requests: 14 held-out points over their deployment's level",
    ),
    ("itl", "moe", "1-8"): Interval(
        1.0,
        1.231,
        6,
        "itl of moe models at 1-8 concurrent requests: 6 held-out points over their deployment's level",
    ),
    ("itl", "moe", "16-32"): Interval(
        0.951,
        1.098,
        20,
        "itl of moe models at 16-32 concurrent requests: 20 held-out points over their deployment's level",
    ),
    ("itl", "moe", "64+"): Interval(
        0.807,
        1.257,
        26,
        "itl of moe models at 64+ concurrent requests: 26 held-out points over their deployment's level",
    ),
    ("ttft", "all", "1-8"): Interval(
        0.646,
        1.081,
        45,
        "ttft of all models at 1-8 concurrent requests: 45 held-out points over their deployment's level",
    ),
    ("ttft", "all", "16-32"): Interval(
        0.763,
        1.296,
        63,
        "ttft of all models at 16-32 concurrent requests: 63 held-out points over their deployment's level",
    ),
    ("ttft", "all", "64+"): Interval(
        0.764,
        2.105,
        60,
        "ttft of all models at 64+ concurrent requests: 60 held-out points over their deployment's level",
    ),
    ("ttft", "all", "all"): Interval(
        0.7,
        1.67,
        168,
        "ttft of all models at all concurrent requests: 168 held-out points over their deployment's level",
    ),
    ("ttft", "dense", "1-8"): Interval(
        0.589,
        1.08,
        28,
        "ttft of dense models at 1-8 concurrent requests: 28 held-out points over their deployment's level",
    ),
    ("ttft", "dense", "16-32"): Interval(
        0.736,
        1.313,
        43,
        "ttft of dense models at 16-32 concurrent requests: 43 held-out points over their deployment's level",
    ),
    ("ttft", "dense", "64+"): Interval(
        0.753,
        2.14,
        57,
        "ttft of dense models at 64+ concurrent requests: 57 held-out points over their deployment's level",
    ),
    ("ttft", "hybrid", "1-8"): Interval(
        0.731,
        1.369,
        11,
        "ttft of hybrid models at 1-8 concurrent requests: 11 held-out points over their deployment's level",
    ),
    ("ttft", "moe", "1-8"): Interval(
        0.789,
        1.0,
        6,
        "ttft of moe models at 1-8 concurrent requests: 6 held-out points over their deployment's level",
    ),
    ("ttft", "moe", "16-32"): Interval(
        0.794,
        1.223,
        20,
        "ttft of moe models at 16-32 concurrent requests: 20 held-out points over their deployment's level",
    ),
    ("ttft", "moe", "64+"): Interval(
        0.788,
        1.0,
        3,
        "ttft of moe models at 64+ concurrent requests: 3 held-out points over their deployment's level",
    ),
}
