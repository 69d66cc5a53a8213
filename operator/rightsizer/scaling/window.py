"""What the vLLM replicas of one deployment did over the last window, from samples of their /metrics. Pure.

The embedded metrics source scrapes each pod's exposition text, parses it with prometheus_client's parser into a
`PodSample`, keeps the samples of the last window, and `window_stats` turns them into the numbers the autoscaler
needs — the same ones the Prometheus source gets from PromQL (rightsizer.scaling.promql):

* p95 TTFT and ITL: the quantile of the summed per-pod histogram increases (histogram_quantile over rate);
* arrival rate: requests that got their first token, plus the growth of the waiting queue (a counter of admitted
  requests saturates at what the replicas serve; arrivals beyond that accumulate in the queue), per second of the
  window, counting pods that left during the window too;
* waiting and running requests (summed) and KV-cache usage (mean) at the latest sample of each pod;
* mean prompt and generation length of the requests that finished in the window;
* mean TTFT, ITL and prefill time (histogram sum over count), which self-calibration compares with the model.

vLLM labels every series with model_name and engine (vllm/v1/metrics/loggers.py, 0.19.0); a pod with several
engines (data parallel) exposes one series per engine, and they are summed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from rightsizer.facts.vllm_metrics import (
    BUCKET_LABEL,
    HISTOGRAM_BUCKET,
    HISTOGRAM_COUNT,
    HISTOGRAM_SUM,
    Kind,
    Signal,
    names_for,
)
from rightsizer.scaling.histograms import Histogram, histogram_increase, mean, merge, quantile

HISTOGRAM_SIGNALS = (Signal.TTFT, Signal.ITL, Signal.PROMPT_TOKENS, Signal.GENERATION_TOKENS, Signal.PREFILL_TIME)
GAUGE_SIGNALS = (Signal.REQUESTS_WAITING, Signal.REQUESTS_RUNNING, Signal.KV_CACHE_USAGE)
QUANTILE = 0.95
# The share of the window the samples must span before the arrival rate means anything: the embedded scraper starts
# sampling a deployment when its autoscaling is switched on (or the operator starts), and a rate over the first few
# seconds of a bursty trace is off by half (CI: 1.39 req/s read over 11 s of a 0.8 req/s load, a replica nobody needed).
MIN_COVERAGE = 0.8


@dataclass(frozen=True)
class PodSample:
    """One scrape of one pod: the histograms and gauges the autoscaler reads, summed over the pod's engines."""

    time: float
    histograms: Mapping[Signal, Histogram] = field(default_factory=dict)
    gauges: Mapping[Signal, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowStats:
    """A deployment's replicas over one window. None: nothing to say (no observation, or too few samples)."""

    pods: int  # pods that reported at least once in the window
    request_rate: float | None  # arrivals per second
    ttft_p95_s: float | None
    itl_p95_s: float | None
    waiting: float
    running: float
    kv_usage: float | None
    mean_prompt_tokens: float | None
    mean_generation_tokens: float | None
    finished: float = 0.0  # requests that finished in the window (what the mean lengths rest on)
    ttft_mean_s: float | None = None  # the histograms' sum over count: exact, unlike a quantile from buckets
    itl_mean_s: float | None = None  # (what self-calibration compares with the model, scaling.calibration)
    prefill_mean_s: float | None = None  # of the requests that finished: first scheduling to first token


def _samples_by_name(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            by_name[sample.name].append((dict(sample.labels), float(sample.value)))
    return by_name


def _histogram(by_name: Mapping[str, list[tuple[dict[str, str], float]]], name: str) -> Histogram | None:
    buckets = by_name.get(name + HISTOGRAM_BUCKET)
    if not buckets:
        return None
    per_bound: dict[float, float] = defaultdict(float)
    for labels, value in buckets:
        per_bound[float(labels[BUCKET_LABEL])] += value
    total = sum(v for _, v in by_name.get(name + HISTOGRAM_SUM, []))
    count = sum(v for _, v in by_name.get(name + HISTOGRAM_COUNT, []))
    return Histogram.of(per_bound.items(), total, count)


def parse_sample(text: str, time: float, version: str) -> PodSample:
    """One pod's /metrics text (Prometheus exposition format) at `time`, read under the names vLLM `version` uses
    (the newest exposed name of each signal that the text carries)."""
    by_name = _samples_by_name(text)
    histograms: dict[Signal, Histogram] = {}
    gauges: dict[Signal, float] = {}
    for signal in (*HISTOGRAM_SIGNALS, *GAUGE_SIGNALS):
        for metric in names_for(signal, version):
            if metric.kind == Kind.HISTOGRAM:
                h = _histogram(by_name, metric.name)
                if h is not None:
                    histograms[signal] = h
                    break
            elif metric.name in by_name:
                values = [v for _, v in by_name[metric.name]]
                gauges[signal] = sum(values) / len(values) if signal == Signal.KV_CACHE_USAGE else sum(values)
                break
    return PodSample(time, histograms, gauges)


def in_window(samples: Sequence[PodSample], now: float, window: float) -> list[PodSample]:
    """The samples taken in [now − window, now], oldest first."""
    return [s for s in samples if now - window <= s.time <= now]


def _increase(samples: Sequence[PodSample], signal: Signal) -> Histogram | None:
    with_signal = [s.histograms[signal] for s in samples if signal in s.histograms]
    return histogram_increase(with_signal)


def _arrivals(samples: Sequence[PodSample]) -> float | None:
    """Requests that arrived at one pod between its first and last sample: those admitted (first token) plus the
    growth of its queue. None with fewer than two samples."""
    admitted = _increase(samples, Signal.TTFT)
    if len(samples) < 2 or admitted is None:
        return None
    first, last = samples[0].gauges, samples[-1].gauges
    return admitted.count + last.get(Signal.REQUESTS_WAITING, 0.0) - first.get(Signal.REQUESTS_WAITING, 0.0)


def window_stats(
    samples_by_pod: Mapping[str, Sequence[PodSample]],
    now: float,
    window: float,
    live: Collection[str] | None = None,
) -> WindowStats:
    """The deployment over [now − window, now] from each pod's samples (oldest first).

    Counts (arrivals, latency histograms, lengths) include every pod with samples in the window, also one that
    died or was removed meanwhile: what it served still happened in the window, as PromQL's `rate` over its
    series still counts it. The arrival rate is the total over the span the samples cover (at most the window),
    not a sum of per-pod rates, so a pod that lived only part of the window weighs what it served. Gauges (waiting,
    running, KV usage) and the pod count come from the `live` pods only (default: all)."""
    windows = {pod: in_window(samples, now, window) for pod, samples in samples_by_pod.items()}
    windows = {pod: samples for pod, samples in windows.items() if samples}
    increases: dict[Signal, list[Histogram]] = defaultdict(list)
    arrived: list[float] = []
    for samples in windows.values():
        for signal in HISTOGRAM_SIGNALS:
            h = _increase(samples, signal)
            if h is not None:
                increases[signal].append(h)
        count = _arrivals(samples)
        if count is not None:
            arrived.append(count)
    times = [s.time for samples in windows.values() for s in samples]
    span = max(times) - min(times) if times else 0.0
    current = [samples[-1].gauges for pod, samples in windows.items() if live is None or pod in live]
    kv = [g[Signal.KV_CACHE_USAGE] for g in current if Signal.KV_CACHE_USAGE in g]
    merged = {signal: merge(hs) for signal, hs in increases.items()}
    finished = merged.get(Signal.GENERATION_TOKENS)
    return WindowStats(
        pods=len(current),
        request_rate=max(0.0, sum(arrived) / span) if arrived and span >= MIN_COVERAGE * window and span > 0 else None,
        ttft_p95_s=quantile(QUANTILE, merged.get(Signal.TTFT)),
        itl_p95_s=quantile(QUANTILE, merged.get(Signal.ITL)),
        waiting=sum(g.get(Signal.REQUESTS_WAITING, 0.0) for g in current),
        running=sum(g.get(Signal.REQUESTS_RUNNING, 0.0) for g in current),
        kv_usage=sum(kv) / len(kv) if kv else None,
        mean_prompt_tokens=mean(merged.get(Signal.PROMPT_TOKENS)),
        mean_generation_tokens=mean(merged.get(Signal.GENERATION_TOKENS)),
        finished=finished.count if finished is not None else 0.0,
        ttft_mean_s=mean(merged.get(Signal.TTFT)),
        itl_mean_s=mean(merged.get(Signal.ITL)),
        prefill_mean_s=mean(merged.get(Signal.PREFILL_TIME)),
    )
