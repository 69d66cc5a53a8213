"""How far the performance model can be trusted, by kind of point: the interval its held-out errors leave.

Each prediction carries a pessimistic edge: the central estimate times the slow factor of its kind (architecture
family × concurrency band), the ratio measured / predicted that 90 % of held-out published measurements of that
kind stay under (facts/perf_intervals.py, made by `bench/latency_model.py --intervals` from leave-one-source-out
residuals). SLO checks use the edge, so a plan promises only what the slow end of the model's own track record
meets. A kind with too few measurements borrows its band's figure, then the metric's; a GPU with no published
measurements behind the model gets the wider of its family's figure and the one pooled over every family.
"""

from __future__ import annotations

import itertools
import math

from rightsizer.facts.perf_intervals import INTERVALS, MEASURED_INTERVALS, Interval, Key
from rightsizer.model.config import LayerKind, ModelFacts

# The concurrency bands (requests in a replica): upper end, name, and the load that stands for the band (its geometric
# middle; the open band's is the middle of 64-128, where its measurements sit).
BANDS = ((8.0, "1-8", 2.8), (32.0, "16-32", 22.6), (math.inf, "64+", 90.5))
MIN_POINTS = 6  # below this many held-out points, a kind borrows the figure of a wider one
ALL = "all"
_NONE = Interval(1.0, 1.0, 0, "no held-out measurements")


def family_of(facts: ModelFacts) -> str:
    """dense, moe, mla (latent attention; every such model is MoE today) or hybrid (sliding-window or linear
    attention layers beside full ones)."""
    if facts.is_mla:
        return "mla"
    if LayerKind.LINEAR in facts.layer_kinds or LayerKind.SLIDING in facts.layer_kinds:
        return "hybrid"
    return "moe" if facts.is_moe else "dense"


def band_of(concurrency: float) -> str:
    return next(name for high, name, _ in BANDS if concurrency <= high)


Table = dict[Key, Interval]


def _cell(table: Table, metric: str, family: str, band: str) -> Interval:
    for key in ((metric, family, band), (metric, ALL, band), (metric, ALL, ALL)):
        found = table.get(key)
        if found is not None and found.points >= MIN_POINTS:
            return found
    return table.get((metric, ALL, ALL), _NONE)


def interval(metric: str, family: str, concurrency: float, *, calibrated: bool = True) -> Interval:
    """The held-out interval for a `metric` ("ttft" or "itl") prediction of this kind at this load.

    Between the loads that stand for two bands the factors are interpolated in log(load), so a plan's batch limit
    does not jump where a band ends. A GPU without published measurements behind the model gets the wider of its
    family's interval and the one pooled over every family: its errors are not known to be like any one family's."""
    own = _interpolated(INTERVALS, metric, family, concurrency)
    if calibrated:
        return own
    pooled = _interpolated(INTERVALS, metric, ALL, concurrency)
    return max(own, pooled, key=lambda i: i.slow)


def measured_interval(metric: str, family: str, concurrency: float) -> Interval:
    """The interval of a prediction whose speed a deployment's own metrics have set (scaling.calibration): how far
    a published deployment's points stray from the level its other points give (MEASURED_INTERVALS). What differs
    between sources — the GPU's clocks and driver, the harness, the release — is then measured, not guessed, so the
    cross-source interval would count it a second time; what is left is how the model's error changes with the
    load and the lengths within one deployment. The GPU needs no widening: the measurements were made on it."""
    return _interpolated(MEASURED_INTERVALS, metric, family, concurrency)


def _interpolated(table: Table, metric: str, family: str, concurrency: float) -> Interval:
    anchors = [(middle, _cell(table, metric, family, name)) for _, name, middle in BANDS]
    load = max(concurrency, 1.0)
    if load <= anchors[0][0]:
        return anchors[0][1]
    for (low_load, low), (high_load, high) in itertools.pairwise(anchors):
        if load < high_load:
            share = math.log(load / low_load) / math.log(high_load / low_load)
            nearer = low if share < 0.5 else high
            return Interval(
                fast=low.fast + share * (high.fast - low.fast),
                slow=low.slow + share * (high.slow - low.slow),
                points=nearer.points,
                basis=nearer.basis,
            )
    return anchors[-1][1]
