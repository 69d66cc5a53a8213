"""The performance model against published vLLM V1 measurements it was not fitted to.

    .venv/bin/python bench/latency_model.py            # shipped factors vs the model as it was (MAIN_2026_12)
    .venv/bin/python bench/latency_model.py --fit      # refit on the `fit` split, then evaluate
    .venv/bin/python bench/latency_model.py --loso     # and leave-one-source-out cross-validation (a fit per source)
    .venv/bin/python bench/latency_model.py --rows     # every row's prediction
    .venv/bin/python bench/latency_model.py --pending  # with the verified rows held back (latency-pending.csv)
    .venv/bin/python bench/latency_model.py --sources  # and the figures of each source
    .venv/bin/python bench/latency_model.py --levels   # and which row settings tell deployments' levels apart
    .venv/bin/python bench/latency_model.py --loso --intervals operator/rightsizer/facts/perf_intervals.py \
        --held-out ~/.cache/rightsizer/loso.csv        # the interval tables (INTERVALS, MEASURED_INTERVALS), keeping
                                                       # the residuals for the next run while its inputs are the same

The corpus is bench/data/latency-published.csv (bench/latency_corpus.py). A row predicts what its source measured:
closed-loop clients (`concurrency`), Poisson arrivals (`request_rate`), or a burst (every request sent at once),
drained through vLLM V1's scheduler step by step (`burst`, rightsizer.perf.drain): its TTFT is a queue draining,
reported apart and never fitted; its median ITL is the median over every gap, as vllm bench serve computes it.
Errors are (predicted − measured) / measured: a negative signed error is an optimistic prediction. The last line is
`summary: itl_median_abs_err=<pct> ttft_median_abs_err=<pct> n=<N>` over the holdout split.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import multiprocessing
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `bench` as a package when run as a script

from bench import latency_corpus as corpus  # noqa: E402
from bench.fitting import nelder_mead  # noqa: E402
from rightsizer.facts.perf_calibration import VLLM, Efficiency  # noqa: E402
from rightsizer.facts.perf_intervals import (  # noqa: E402
    ACROSS_SOURCES,
    GENERATED,
    WITHIN_DEPLOYMENT,
    Interval,
    Key,
    described,
)
from rightsizer.perf import Prediction, Replica, Traffic, predict  # noqa: E402
from rightsizer.perf.drain import Drain, drain  # noqa: E402
from rightsizer.perf.uncertainty import ALL  # noqa: E402

# The model as it was on main before the V1 calibration (facts/perf_calibration.py at b112208): the baseline every
# figure is printed beside. Its new terms are off (their neutral values), so it reproduces the old predictions.
MAIN_2026_12 = Efficiency(
    hbm=0.920,
    compute=0.489,
    link=0.8,
    allreduce_latency_s=42.5e-6,
    step_overhead_s=3180e-6,
    request_overhead_s=22429e-6,
    source="main before the V1 calibration",
)


@dataclass(frozen=True)
class Scored:
    row: corpus.Row
    metric: str  # "itl" or "ttft"
    measured: float  # ms
    predicted: float  # ms
    burst: bool

    @property
    def error(self) -> float:
        return (self.predicted - self.measured) / self.measured


# --- one row ---------------------------------------------------------------------------------------------------------


def _lengths(row: corpus.Row) -> tuple[int, int]:
    return max(1, round(row.input_tokens)), max(1, round(row.output_tokens))


def burst_lengths(row: corpus.Row) -> tuple[list[int], list[int]]:
    """The prompt and output lengths of a burst's requests, in the order they were sent. `random` datasets fix every
    length; a conversation dataset (ShareGPT) spreads them: exponential quantiles around the row's means, prompt and
    output lengths shuffled independently (a fixed, deterministic order), at least 4 tokens each as vllm bench serve
    keeps them."""
    n = row.burst or 1
    prompt, output = _lengths(row)
    if not row.varied_lengths:
        return [prompt] * n, [output] * n
    quantiles = [-math.log(1 - (k + 0.5) / n) for k in range(n)]
    prompts = [max(4, round(prompt * quantiles[k])) for k in sorted(range(n), key=lambda k: (k * 0.618034) % 1)]
    outputs = [max(4, round(output * quantiles[k])) for k in sorted(range(n), key=lambda k: (k * 0.414214) % 1)]
    return prompts, outputs


def burst(r: Replica, row: corpus.Row) -> Drain:
    """A burst (every request sent at once) drained by vLLM V1's scheduler step by step (perf.drain)."""
    prompts, outputs = burst_lengths(row)
    return drain(r, prompts, outputs, first_token_s=r.efficiency.request_overhead_s)


def fluid_burst_ttft(r: Replica, prompt: int, output: int, requests: int, saturated: Prediction) -> float:
    """The bench before perf.drain (kept for the baseline column): TTFT of the median request of `requests` sent at
    once, seconds.

    The replica admits up to its capacity at once and prefills their prompts through the token budget, chunk by
    chunk (decode of the admitted ones rides in the same steps); the rest wait for slots, which free at the
    saturated completion rate. The median request is number requests/2."""
    median = requests / 2.0
    admitted = min(median, float(saturated.capacity))
    budget = float(r.max_num_batched_tokens)
    steps = math.ceil(admitted * prompt / budget)
    prefill = steps * r.step_seconds(admitted / 2.0, prompt, budget, 0.0, budget / prompt)
    waiting = max(0.0, median - saturated.capacity) / saturated.request_rate if saturated.request_rate > 0 else 0.0
    return r.efficiency.request_overhead_s + prefill + waiting


def fluid_burst_itl(r: Replica, prompt: int, output: int, requests: int, varied_lengths: bool) -> float:
    """The bench before perf.drain (kept for the baseline column): median inter-token latency of a burst that fits in
    the running batch, seconds.

    Every request is admitted at once; their prompts are prefilled through the token budget over the first
    `requests × prompt / budget` steps, and every one of those steps also decodes the requests already prefilled.
    The median request is prefilled halfway through that phase, so it decodes its first min(output, phase / 2)
    tokens in chunk-carrying steps and the rest in plain decode steps. The median gap is whichever kind of step
    most tokens see. After the prefill phase nothing arrives: with fixed lengths the batch stays whole to the end;
    with a conversation dataset's spread of lengths it shrinks as requests finish, and half of the tokens come after
    it has halved (exactly so for exponentially distributed lengths), so the median plain gap is at half the batch."""
    budget = float(r.max_num_batched_tokens)
    phase = requests * prompt / budget
    if min(float(output), phase / 2.0) > output / 2.0:
        return r.step_seconds(requests / 2.0, prompt, budget, prompt / 2.0, budget / prompt)
    batch = requests / 2.0 if varied_lengths else float(requests)
    return r.decode_step_seconds(max(1.0, batch), prompt + output / 2.0)


def score_row(row: corpus.Row, efficiency: Efficiency, drained: bool = True) -> list[Scored]:
    """A row's predictions. `drained`: a burst through perf.drain; else the fluid approximation of the bench before
    it (the baseline column)."""
    r = corpus.replica(row, efficiency)
    prompt, output = _lengths(row)
    if row.burst is not None and not drained:
        return _fluid_burst_row(r, row, prompt, output)
    if row.burst is not None:
        queue = burst(r, row)
        return _as_measured(row, (queue.itl_p50, queue.itl_mean), (queue.ttft_p50, queue.ttft_mean), True)
    if row.concurrency is not None and row.closed_loop:
        prediction = predict(r, Traffic(prompt, output, concurrency=row.concurrency))
    else:
        assert row.request_rate is not None
        prediction = predict(r, Traffic(prompt, output, request_rate=row.request_rate))
    itl, ttft = prediction.itl, prediction.ttft
    return _as_measured(row, (itl.p50, itl.mean), (ttft.p50, ttft.mean), False)


def _as_measured(row: corpus.Row, itl: tuple[float, float], ttft: tuple[float, float], burst_row: bool) -> list[Scored]:
    """The row's measured ITL and TTFT beside the predicted (median, mean), seconds, in the statistic the row reports
    (median TPOT counts as a median gap)."""
    scored = []
    if row.itl_ms:
        predicted = itl[0] if row.itl_stat in ("median", "median_tpot") else itl[1]
        scored.append(Scored(row, "itl", row.itl_ms, predicted * 1e3, burst_row))
    if row.ttft_ms:
        predicted = ttft[0] if row.ttft_stat == "median" else ttft[1]
        scored.append(Scored(row, "ttft", row.ttft_ms, predicted * 1e3, burst_row))
    return scored


def _fluid_burst_row(r: Replica, row: corpus.Row, prompt: int, output: int) -> list[Scored]:
    burst_size = row.burst or 1
    prediction = predict(r, Traffic(prompt, output, concurrency=float(burst_size)))
    itl = (prediction.itl.p50, prediction.itl.mean)
    if burst_size <= prediction.capacity:
        itl = (fluid_burst_itl(r, prompt, output, burst_size, row.varied_lengths),) * 2
    ttft = fluid_burst_ttft(r, prompt, output, burst_size, prediction)
    return _as_measured(row, itl, (ttft, ttft), True)


def score(
    rows: Iterable[corpus.Row], efficiency: Efficiency, drained: bool = True
) -> tuple[list[Scored], dict[str, int]]:
    scored: list[Scored] = []
    skipped: dict[str, int] = defaultdict(int)
    for row in rows:
        try:
            scored.extend(score_row(row, efficiency, drained))
        except corpus.RowSkippedError as why:
            skipped[str(why)] += 1
    return scored, dict(skipped)


# --- figures ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    n: int
    median_abs: float
    median_signed: float

    def text(self) -> str:
        if not self.n:
            return f"{'-':>7} {'-':>7} {0:>4}"
        return f"{100 * self.median_abs:6.1f}% {100 * self.median_signed:+6.1f}% {self.n:>4}"


def figures(points: Sequence[Scored]) -> Figures:
    if not points:
        return Figures(0, math.nan, math.nan)
    errors = [p.error for p in points]
    return Figures(len(points), statistics.median(abs(e) for e in errors), statistics.median(errors))


def _group(points: Sequence[Scored], key: Callable[[Scored], str]) -> dict[str, list[Scored]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for p in points:
        groups[key(p)].append(p)
    return dict(sorted(groups.items()))


def table(
    title: str, current: Sequence[Scored], baseline: Sequence[Scored], out: Callable[[str], None] = print
) -> None:
    """ITL and TTFT figures for `current` beside `baseline`, overall and by GPU, family and concurrency band."""
    out(f"\n{title}")
    out(f"{'':<34} {'ITL |err| bias    n':<22} {'TTFT |err| bias    n':<22}  | baseline ITL / TTFT")
    keys: list[tuple[str, Callable[[Scored], str]]] = [
        ("all", lambda p: "all"),
        ("gpu", lambda p: p.row.gpu),
        ("family", lambda p: corpus.kind(p.row)[1]),
        ("band", lambda p: p.row.band),
    ]
    for name, key in keys:
        now, then = _group(current, key), _group(baseline, key)
        for group, points in now.items():
            old = then.get(group, [])
            cells = [figures([p for p in pts if p.metric == m]) for pts in (points, old) for m in ("itl", "ttft")]
            label = f"{name}: {group}" if name != "all" else "all"
            out(f"{label:<34} {cells[0].text():<22} {cells[1].text():<22}  | {cells[2].text()} / {cells[3].text()}")


def source_table(title: str, points: Sequence[Scored], out: Callable[[str], None] = print) -> None:
    """ITL and TTFT figures for each source (the unit of the split and of leave-one-source-out)."""
    out(f"\n{title}")
    out(f"{'ITL |err| bias    n':<22} {'TTFT |err| bias    n':<22}  source")
    for source, pts in _group(points, lambda p: p.row.source_key).items():
        cells = [figures([p for p in pts if p.metric == m]) for m in ("itl", "ttft")]
        out(f"{cells[0].text():<22} {cells[1].text():<22}  {source}")


def implied_share_table(rows: Sequence[corpus.Row], out: Callable[[str], None] = print) -> None:
    """Each source's highest implied weight-GEMM share of the datasheet peak (corpus.implied_gemm_share): a check on
    the rows' own figures that does not involve the model."""
    highest: dict[str, tuple[float, corpus.Row]] = {}
    for row in rows:
        share = corpus.implied_gemm_share(row)
        if share is not None and share > highest.get(row.source_key, (-1.0, row))[0]:
            highest[row.source_key] = (share, row)
    out("\nimplied weight-GEMM share of the datasheet dense peak, highest row per source (concurrency-bound rows)")
    for source, (share, row) in sorted(highest.items(), key=lambda kv: -kv[1][0]):
        out(f"{100 * share:6.1f}%  line {row.line:<4} {row.gpu[7:]} TP{row.tp} c{row.concurrency:g}  {source}")


# --- fitting ---------------------------------------------------------------------------------------------------------

# Fitted parameters: fractions of a datasheet peak through a scaled logistic (kept in a physical range), fixed costs
# in log space. The ranges are what microbenchmarks reach (HBM streaming ≤ 92 %, dense GEMMs ≤ 80 %).
BOUNDS = {
    # fractions of a datasheet peak: what microbenchmarks reach (HBM streaming ≤ 92 %, dense GEMMs ≤ 80 %)
    "hbm": (0.5, 0.92),
    "compute": (0.2, 0.8),
    "moe_hbm": (0.2, 1.0),
    "attention_hbm": (0.2, 1.0),
    "roofline_overlap": (0.0, 0.5),
    # fixed costs, seconds: V1's per-step CPU work is 0.3-6 ms (vLLM's own V1 blog), a request's HTTP, tokenising
    # and first detokenising 5-80 ms, per running sequence (sampling, detokenising) at most 60 µs
    "step_overhead_s": (0.3e-3, 6e-3),
    "request_overhead_s": (5e-3, 80e-3),
    "seq_overhead_s": (0.0, 60e-6),
    # one tensor-parallel all-reduce of a decode step's small message: NVLink custom all-reduce 5-50 µs
    "allreduce_latency_s": (5e-6, 50e-6),
}
HUBER_DELTA = 0.3  # log-error beyond which a point counts linearly: a few wild rows cannot drag the fit


# What the V1 corpus identifies. The hardware fractions (hbm, compute) and the per-step overhead stay as fitted on
# vLLM's own CI measurements (bench/latency_v0.py): the V1 corpus's clean low-load rows agree with them within about
# 10 %, and its loaded rows, mostly bursts, cannot separate a slower HBM from a larger overhead.
FITTED = ("request_overhead_s", "seq_overhead_s")


def _fitted_names(e: Efficiency) -> list[str]:
    names = {f.name for f in fields(e)}
    return [n for n in FITTED if n in names]


def _pack(e: Efficiency) -> np.ndarray:
    """Each parameter through a scaled logistic, so the search stays inside its physical range."""
    values = []
    for name in _fitted_names(e):
        low, high = BOUNDS[name]
        share = min(max((getattr(e, name) - low) / (high - low), 0.02), 0.98)
        values.append(math.log(share / (1 - share)))
    return np.array(values)


def _unpack(x: np.ndarray, start: Efficiency) -> Efficiency:
    update: dict[str, Any] = {}  # Efficiency field -> value (every fitted field is a float)
    for value, name in zip(x, _fitted_names(start), strict=True):
        low, high = BOUNDS[name]
        update[name] = low + (high - low) / (1 + math.exp(-float(value)))
    return replace(start, **update)


def _loss_rows(rows: Sequence[corpus.Row], efficiency: Efficiency) -> float:
    """Mean Huber loss of log(predicted / measured), each source weighted equally (one publisher's 100 rows must not
    outvote ten publishers' five), and a burst's TTFT left out (a queue draining: it would swamp the step terms)."""
    scored, _ = score(rows, efficiency)
    points = [p for p in scored if not (p.burst and p.metric == "ttft")]
    per_source: dict[str, int] = defaultdict(int)
    for p in points:
        per_source[p.row.source_key] += 1
    total = 0.0
    for p in points:
        error = abs(math.log(p.predicted / p.measured))
        huber = 0.5 * error**2 if error <= HUBER_DELTA else HUBER_DELTA * (error - 0.5 * HUBER_DELTA)
        total += huber / per_source[p.row.source_key]
    return total / max(1, len(per_source))


def fit(rows: Sequence[corpus.Row], start: Efficiency = VLLM, iterations: int = 400) -> Efficiency:
    """The FITTED parameters minimising the source-weighted Huber loss of log(predicted / measured) over `rows`."""
    fitted_rows = [r for r in rows if usable(r)]

    def loss(x: np.ndarray) -> float:
        return _loss_rows(fitted_rows, _unpack(x, start))

    best = nelder_mead(loss, _pack(start), iterations=iterations)
    best = nelder_mead(loss, best, step=0.1, iterations=iterations // 2)
    return _unpack(best, start)


def usable(row: corpus.Row) -> bool:
    try:
        corpus.kind(row)
    except corpus.RowSkippedError:
        return False
    return True


def _held_out(job: tuple[Sequence[corpus.Row], str, Efficiency]) -> list[Scored]:
    rows, source, start = job
    train = [r for r in rows if r.source_key != source]
    test = [r for r in rows if r.source_key == source]
    return score(test, fit(train, start, iterations=60))[0]


def loso(rows: Sequence[corpus.Row], start: Efficiency, progress: Callable[[str], None]) -> list[Scored]:
    """Leave-one-source-out: each source is predicted by factors fitted on every other source (one process per CPU:
    the fits are independent, and each scores every burst through perf.drain)."""
    sources = sorted({r.source_key for r in rows if usable(r)})
    held: list[Scored] = []
    jobs = [(rows, source, start) for source in sources]
    with multiprocessing.get_context("fork").Pool(max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        for i, (source, points) in enumerate(zip(sources, pool.imap(_held_out, jobs), strict=True), 1):
            progress(f"  loso {i}/{len(sources)}: {source[:80]}")
            held.extend(points)
    return held


def intervals(held: Sequence[Scored]) -> dict[Key, Interval]:
    """Per kind (metric, family, band), and pooled over families and over bands: the 10th and 90th percentiles of
    measured / predicted over held-out points. Queue-bound rows (corpus.Row.queue_bound) are left out: their
    latencies are the source's admission limit, which a plan sets itself (max-num-seqs, the KV cache) and keeps
    below saturation, so as the model's error they would widen a small kind's edge by orders of magnitude."""
    groups: dict[Key, list[float]] = defaultdict(list)
    for p in held:
        if p.row.queue_bound:
            continue
        for key in _kinds(p):
            groups[key].append(p.measured / p.predicted)
    return _percentiles(groups, ACROSS_SOURCES)


def _kinds(p: Scored) -> tuple[Key, Key, Key]:
    """The kinds a point counts in: its family and band, its band over every family, and its metric over all."""
    family, band = corpus.kind(p.row)[1], p.row.band
    return (p.metric, family, band), (p.metric, ALL, band), (p.metric, ALL, ALL)


MIN_DEPLOYMENT_POINTS = 3  # a deployment's points of one metric before their spread says anything


def deployment_of(row: corpus.Row) -> tuple[object, ...]:
    """What one LLMDeployment's metrics see of a source: one model on one GPU kind and layout, at whatever lengths
    and loads the source measured it."""
    return (row.source_key, row.model, row.gpu, row.tp, row.pp, row.ep, row.quantization, row.kv_cache_dtype)


def by_deployment(points: Sequence[Scored]) -> dict[tuple[object, ...], list[Scored]]:
    """Points grouped by metric and deployment (`deployment_of`), queue-bound rows left out."""
    groups: dict[tuple[object, ...], list[Scored]] = defaultdict(list)
    for p in points:
        if not p.row.queue_bound:
            groups[(p.metric, *deployment_of(p.row))].append(p)
    return groups


def at_deployment_level(points: Sequence[Scored]) -> list[Scored]:
    """Each point predicted at the level the other points of its metric on the same deployment (`deployment_of`)
    set: its prediction times their median measured / predicted ratio, as if those had been its calibration
    windows (scaling.calibration learns one factor for the prompt part and one for the decode part). What is left
    of the error is how it moves with load and lengths within one deployment, not the source's level. Deployments
    with fewer than MIN_DEPLOYMENT_POINTS points of a metric are left out (a lone point is its own median), and so
    are queue-bound rows."""
    leveled: list[Scored] = []
    for group in by_deployment(points).values():
        if len(group) < MIN_DEPLOYMENT_POINTS:
            continue
        ratios = [p.measured / p.predicted for p in group]
        for i, p in enumerate(group):
            leveled.append(replace(p, predicted=p.predicted * statistics.median(ratios[:i] + ratios[i + 1 :])))
    return leveled


def levels_of(points: Sequence[Scored], metric: str) -> list[tuple[float, Scored]]:
    """Each deployment's level for one metric, the median measured / predicted ratio of its points, beside its first
    point (deployments with MIN_DEPLOYMENT_POINTS or more, queue-bound rows left out, as in `at_deployment_level`)."""
    return [
        (statistics.median(p.measured / p.predicted for p in group), group[0])
        for (kind, *_), group in by_deployment(points).items()
        if kind == metric and len(group) >= MIN_DEPLOYMENT_POINTS
    ]


def deployment_levels(points: Sequence[Scored], metric: str) -> list[float]:
    return [level for level, _ in levels_of(points, metric)]


def publisher_of(row: corpus.Row) -> str:
    """Who measured a row: the repository owner of a source, or the host (and owner, on GitHub) of a URL."""
    key = row.source_key
    if key.startswith(("http://", "https://")):
        host, _, path = key.split("://", 1)[1].partition("/")
        return f"{host}/{path.split('/')[0]}" if host == "github.com" else host
    return key.split("/", 1)[0]


# Row settings that might tell deployments' levels apart (`level_predictors`).
LEVEL_SETTINGS: dict[str, Callable[[Scored], object]] = {
    "GPU": lambda p: p.row.gpu,
    "release": lambda p: ".".join(p.row.vllm_version.split(".")[:2]),
    "family": lambda p: corpus.kind(p.row)[1],
    "weight format": lambda p: p.row.quantization,
    "TP": lambda p: p.row.tp,
    "client": lambda p: "burst" if p.burst else "closed loop" if p.row.closed_loop else "rate",
    "publisher": lambda p: publisher_of(p.row),
}


def level_predictors(points: Sequence[Scored], metric: str) -> dict[str, float]:
    """How well each row setting alone predicts a deployment's level from other sources' deployments: per setting,
    the median over deployments of |level / reference - 1|, the reference being the median level of the deployments
    of other sources that share the setting (of all other sources' where none does). "none" is the reference of
    all other sources' deployments: a setting that does not beat it says nothing about the level."""
    levels = levels_of(points, metric)

    def error(same: Callable[[Scored, Scored], bool]) -> float:
        off = []
        for level, p in levels:
            others = [(lv, q) for lv, q in levels if q.row.source_key != p.row.source_key]
            if not others:
                continue
            sharing = [lv for lv, q in others if same(p, q)] or [lv for lv, _ in others]
            off.append(abs(level / statistics.median(sharing) - 1.0))
        return statistics.median(off) if off else math.nan

    def sharing(setting: Callable[[Scored], object]) -> Callable[[Scored, Scored], bool]:
        return lambda p, q: setting(p) == setting(q)

    found = {"none": error(lambda p, q: True)}
    for name, setting in LEVEL_SETTINGS.items():
        found[name] = error(sharing(setting))
    return found


@dataclass(frozen=True)
class LevelSpread:
    deployments: int
    median_off: float  # median |level - 1|: how far the model's level is from the typical deployment's
    floor: float  # the same after the one factor on every prediction that makes it smallest
    factor: float  # that factor


def level_spread(levels: Sequence[float]) -> LevelSpread:
    """How far deployments' levels lie from the model's, and from each other: no single factor applied to every
    prediction brings the median deployment within `floor` of its measurements (the factor is searched on a fine
    log grid between the lowest and the highest level, so this is an in-sample bound, not a held-out figure). What
    lies below the floor is open only to terms that tell deployments apart."""
    if not levels:
        return LevelSpread(0, math.nan, math.nan, math.nan)
    values = np.array(levels)
    grid = np.geomspace(values.min(), values.max(), 4001) if values.max() > values.min() else values[:1]
    offs = np.median(np.abs(values[None, :] / grid[:, None] - 1.0), axis=1)
    best = int(np.argmin(offs))
    median_off = float(np.median(np.abs(values - 1.0)))
    return LevelSpread(len(levels), median_off, float(offs[best]), float(grid[best]))


def levels_table(title: str, points: Sequence[Scored], out: Callable[[str], None] = print) -> None:
    out(f"\n{title}")
    for metric in ("itl", "ttft"):
        spread = level_spread(deployment_levels(points, metric))
        out(
            f"  {metric:<4} {spread.deployments:>3} deployments: median |level - 1| {100 * spread.median_off:5.1f}%, "
            f"floor {100 * spread.floor:5.1f}% (x{spread.factor:.2f})"
        )


def measured_intervals(held: Sequence[Scored]) -> dict[Key, Interval]:
    """The intervals left once a deployment's own metrics have set the model's level: per kind as in `intervals`,
    over the measured / predicted ratios of the held-out points at their deployment's level (`at_deployment_level`)."""
    groups: dict[Key, list[float]] = defaultdict(list)
    for p in at_deployment_level(held):
        for key in _kinds(p):
            groups[key].append(p.measured / p.predicted)
    return _percentiles(groups, WITHIN_DEPLOYMENT)


def _percentiles(groups: dict[Key, list[float]], what: str) -> dict[Key, Interval]:
    table_: dict[Key, Interval] = {}
    for key, ratios in sorted(groups.items()):
        q10, q90 = (float(np.quantile(ratios, q)) for q in (0.1, 0.9))
        table_[key] = described(key, round(min(1.0, q10), 3), round(max(1.0, q90), 3), len(ratios), what)
    return table_


def intervals_source(across: dict[Key, Interval], within: dict[Key, Interval]) -> str:
    """The generated part of facts/perf_intervals.py: each table's cells, and the tables built from them."""

    def cells(name: str, table_: dict[Key, Interval]) -> str:
        lines = [f'    ("{m}", "{f}", "{b}"): ({i.fast}, {i.slow}, {i.points}),' for (m, f, b), i in table_.items()]
        return f"{name}: dict[Key, Cell] = {{\n" + "\n".join(lines) + "\n}\n"

    return (
        cells("_ACROSS_SOURCES", across)
        + "\n"
        + cells("_WITHIN_DEPLOYMENT", within)
        + "\nINTERVALS = _table(_ACROSS_SOURCES, ACROSS_SOURCES)\n"
        + "# Once a deployment's own metrics have set its speed (scaling.calibration): what is left.\n"
        + "MEASURED_INTERVALS = _table(_WITHIN_DEPLOYMENT, WITHIN_DEPLOYMENT)\n"
    )


# --- the held-out residuals, kept between runs ---------------------------------------------------------------------

HELD_FIELDS = ("source", "line", "metric", "measured", "predicted", "burst")


def fingerprint(efficiency: Efficiency) -> str:
    """What the held-out residuals depend on: the corpus, the starting factors and the model's code."""
    digest = hashlib.sha256(corpus.DATA.read_bytes())
    digest.update(repr(efficiency).encode())
    package = REPO / "operator" / "rightsizer"
    for part in ("perf", "model", "facts"):
        for path in sorted((package / part).rglob("*")):
            # The intervals are what the residuals make, not what they are made from.
            if path.is_file() and path.suffix in (".py", ".json") and path.name != "perf_intervals.py":
                digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def write_held(path: Path, held: Sequence[Scored], stamp: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        f.write(f"# fingerprint {stamp}\n")
        out = csv.writer(f)
        out.writerow(HELD_FIELDS)
        for p in held:
            out.writerow((p.row.source, p.row.line, p.metric, repr(p.measured), repr(p.predicted), int(p.burst)))


def read_held(path: Path, rows: Sequence[corpus.Row], stamp: str) -> list[Scored] | None:
    """The residuals a previous run wrote, or None when the file is missing or was made from other inputs."""
    if not path.exists():
        return None
    with path.open(newline="") as f:
        if f.readline().strip() != f"# fingerprint {stamp}":
            return None
        by_line = {(r.source, r.line): r for r in rows}
        return [
            Scored(
                by_line[(d["source"], int(d["line"]))],
                d["metric"],
                float(d["measured"]),
                float(d["predicted"]),
                d["burst"] == "1",
            )
            for d in csv.DictReader(f)
        ]


def plot(current: Sequence[Scored], baseline: Sequence[Scored], path: Path) -> None:
    """Predicted against measured, ITL and TTFT, the shipped factors beside the model they replaced."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, metric in zip(axes, ("itl", "ttft"), strict=True):
        for points, label, marker in ((baseline, "before (MAIN_2026_12)", "x"), (current, "shipped", "o")):
            for split, colour in (("fit", "tab:blue"), ("holdout", "tab:red")):
                chosen = [p for p in points if p.metric == metric and p.row.split == split]
                ax.scatter(
                    [p.measured for p in chosen],
                    [p.predicted for p in chosen],
                    s=14,
                    marker=marker,
                    color=colour,
                    alpha=0.35 if marker == "x" else 0.8,
                    label=f"{label}, {split}",
                )
        low = min(p.measured for p in current if p.metric == metric) / 2
        high = max(p.measured for p in current if p.metric == metric) * 2
        ax.plot([low, high], [low, high], color="grey", linewidth=1)
        ax.set(xscale="log", yscale="log", xlabel="measured (ms)", ylabel="predicted (ms)", title=metric.upper())
        ax.legend(fontsize=7)
    fig.suptitle("vLLM V1 published latency vs the performance model (burst TTFT excluded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def efficiency_source(e: Efficiency) -> str:
    body = "".join(
        f"    {f.name}={getattr(e, f.name)!r},\n"
        for f in fields(e)
        if f.name != "source" and isinstance(getattr(e, f.name), float)
    )
    return f"VLLM = Efficiency(\n{body}    source=...,\n)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit the factors on the fit split first")
    parser.add_argument("--loso", action="store_true", help="leave-one-source-out cross-validation (a fit per source)")
    parser.add_argument("--rows", action="store_true", help="print every row's prediction")
    parser.add_argument("--plot", metavar="PNG", help="write predicted vs measured to PNG")
    parser.add_argument(
        "--intervals", metavar="FILE", help="write facts/perf_intervals.py's table from the --loso residuals to FILE"
    )
    parser.add_argument(
        "--held-out",
        metavar="CSV",
        help="keep the --loso residuals in CSV and reuse them while the corpus, factors and model code are the same",
    )
    parser.add_argument("--sources", action="store_true", help="the figures of each source too")
    parser.add_argument("--levels", action="store_true", help="which row settings tell deployments' levels apart")
    parser.add_argument(
        "--pending",
        action="store_true",
        help="add the verified rows held back in latency-pending.csv, each on its own split (latency-published.md)",
    )
    args = parser.parse_args(argv)
    if args.intervals and not args.loso:
        parser.error("--intervals needs --loso (the intervals are made of held-out residuals)")
    if args.intervals and args.pending:
        parser.error("--intervals comes from the corpus alone, not the held-back rows")
    rows = corpus.load() + (corpus.load(corpus.PENDING) if args.pending else [])
    efficiency = VLLM
    if args.fit:
        print("fitting on the fit split ...", file=sys.stderr)
        efficiency = fit([r for r in rows if r.split == "fit"])
        print("# fitted factors (paste into operator/rightsizer/facts/perf_calibration.py):")
        print(efficiency_source(efficiency))
    current, skipped = score(rows, efficiency)
    baseline, _ = score(rows, MAIN_2026_12, drained=False)
    predicted = len({(p.row.source, p.row.line) for p in current})
    print(f"corpus: {len(rows)} rows, {predicted} predicted; skipped: {sum(skipped.values())}")
    for why, count in sorted(skipped.items(), key=lambda kv: -kv[1]):
        print(f"  {count:>3} {why}")
    if args.rows:
        for p in current:
            print(
                f"{p.row.line:>4} {p.row.split:<7} {p.row.model[:34]:<34} {p.row.gpu[7:19]:<12} TP{p.row.tp:<2} "
                f"{p.row.band:<5} {p.metric:<4} {p.measured:>10.1f} {p.predicted:>10.1f} {100 * p.error:+7.1f}%"
                + (" burst" if p.burst else "")
            )

    def steady(points: Sequence[Scored]) -> list[Scored]:
        return [p for p in points if not (p.burst and p.metric == "ttft")]

    def split(points: Sequence[Scored], name: str, bursts: bool) -> list[Scored]:
        return [p for p in points if p.row.split == name and (bursts or not (p.burst and p.metric == "ttft"))]

    for name in ("fit", "holdout"):
        table(f"{name} split (burst TTFT excluded)", split(current, name, False), split(baseline, name, False))
        if args.sources:
            source_table(f"{name} split by source (burst TTFT excluded)", split(current, name, False))
    table(
        "holdout split at each deployment's own level (the error self-calibration leaves: each point predicted "
        f"times the median ratio of its deployment's other points; deployments with {MIN_DEPLOYMENT_POINTS}+ points)",
        at_deployment_level(split(current, "holdout", False)),
        at_deployment_level(split(baseline, "holdout", False)),
    )
    levels_table(
        "deployment levels (each deployment's median measured / predicted, both splits, burst TTFT excluded): how far"
        "\nthe median deployment's level lies from the model's, and how far it still would after the best single factor"
        "\non every prediction (the floor only terms that tell deployments apart can go under)",
        steady(current),
    )
    if args.levels:
        print(
            "\nwhat each row setting alone says of a deployment's level (median |level / reference - 1|, the reference"
            "\nbeing the median level of other sources' deployments that share the setting; 'none': of all of them)"
        )
        for metric in ("itl", "ttft"):
            found = level_predictors(steady(current), metric)
            print(f"  {metric:<4} " + ", ".join(f"{name} {100 * value:.1f}%" for name, value in found.items()))
    if args.sources:
        implied_share_table(rows)
    if args.plot:
        plot(steady(current), steady(baseline), Path(args.plot))
        print(f"wrote {args.plot}")
    burst_ttft_points = [p for p in current if p.burst and p.metric == "ttft" and p.row.split == "holdout"]
    print(f"\nburst TTFT (a queue draining), holdout: {figures(burst_ttft_points).text()}")
    if args.loso:
        stamp = fingerprint(efficiency)
        kept = read_held(Path(args.held_out), rows, stamp) if args.held_out else None
        held = kept if kept is not None else loso(rows, efficiency, lambda line: print(line, file=sys.stderr))
        if args.held_out and kept is None:
            write_held(Path(args.held_out), held, stamp)
        elif kept is not None:
            print(f"(leave-one-source-out residuals reused from {args.held_out})", file=sys.stderr)
        # The baseline was never fitted to this corpus: every one of its predictions is already held out.
        table("leave-one-source-out (every source predicted by a fit without it)", steady(held), steady(baseline))
        table(
            "leave-one-source-out at each deployment's own level (as above)",
            at_deployment_level(steady(held)),
            at_deployment_level(steady(baseline)),
        )
        levels_table(
            "deployment levels, leave-one-source-out (as above; each from the fit without its source)",
            steady(held),
        )
        if args.intervals:
            module = Path(args.intervals)
            text = module.read_text()
            head = text[: text.index(f"\n{GENERATED}\n") + 1]  # the marker line, not the constant naming it
            across, within = intervals(steady(held)), measured_intervals(steady(held))
            module.write_text(head + GENERATED + "\n\n" + intervals_source(across, within))
            print(f"wrote {module}")
    holdout = split(current, "holdout", False)
    itl = figures([p for p in holdout if p.metric == "itl"])
    ttft = figures([p for p in holdout if p.metric == "ttft"])
    print(
        f"summary: itl_median_abs_err={100 * itl.median_abs:.1f}% ttft_median_abs_err={100 * ttft.median_abs:.1f}% "
        f"n={itl.n + ttft.n}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
