"""The vLLM Prometheus metrics rightsizer reads, and which name each release exposes them under. Pure data.

Source: `vllm/v1/metrics/loggers.py` (`PrometheusStatLogger.__init__`) of each release's PyPI wheel. Checked, release
by release, by tests/contract/test_vllm_contract.py; the boundaries below were read from the wheels of 0.9.1, 0.9.2,
0.10.0, 0.10.2, 0.11.0, 0.12.0, 0.13.0, 0.14.0, 0.15.0, 0.19.0, 0.20.0, 0.22.0 and 0.33.0:

* inter-token latency: `vllm:time_per_output_token_seconds` until 0.11; 0.10.2 (not 0.10.0; 0.10.1 unread) adds
  `vllm:inter_token_latency_seconds` and keeps the old name, 0.12-0.14 show the old name only with
  `--show-hidden-metrics-for-version`, 0.15 drops it.
* KV-cache usage: `vllm:gpu_cache_usage_perc` until 0.10; 0.9.2 adds `vllm:kv_cache_usage_perc`, 0.11 hides the old
  name, 0.12 drops it.
* TTFT, end-to-end latency, running and waiting requests, prompt and generation lengths per request: the same name
  in every release above.
* prefill time per request (`vllm:request_prefill_time_seconds`, the time from a request's first scheduling to its
  first token, observed when it finishes; self-calibration's prefill evidence): the same name in the cached
  contracts of 0.10.2, 0.11.0 and 0.19.0.

A name "hidden" in a release is not counted as exposed: rightsizer never passes `--show-hidden-metrics-for-version`.
Series names follow prometheus_client: a histogram is read through `<name>_bucket` (label `le`), `_sum`, `_count`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rightsizer.facts.vllm_release import Release, parse_release

HISTOGRAM_BUCKET = "_bucket"
HISTOGRAM_SUM = "_sum"
HISTOGRAM_COUNT = "_count"
HISTOGRAM_SUFFIXES = (HISTOGRAM_BUCKET, HISTOGRAM_SUM, HISTOGRAM_COUNT)
BUCKET_LABEL = "le"


class Signal(StrEnum):
    """What the autoscaler measures."""

    TTFT = "ttft"  # time to first token, seconds
    ITL = "itl"  # inter-token latency (decode step time), seconds
    E2E_LATENCY = "e2e_latency"  # request latency, seconds
    KV_CACHE_USAGE = "kv_cache_usage"  # share of KV-cache blocks in use, 0-1
    REQUESTS_RUNNING = "requests_running"
    REQUESTS_WAITING = "requests_waiting"
    PROMPT_TOKENS = "prompt_tokens"  # prompt length per finished request, tokens
    GENERATION_TOKENS = "generation_tokens"  # generated length per finished request, tokens
    PREFILL_TIME = "prefill_time"  # per finished request: from its first scheduling to its first token, seconds


class Kind(StrEnum):
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricName:
    """One name a signal has had: exposed by default from `since` until `hidden_from` or `removed_in`."""

    name: str
    kind: Kind
    since: Release = (0, 0, 0)
    hidden_from: Release | None = None  # from here only with --show-hidden-metrics-for-version
    removed_in: Release | None = None

    def state(self, release: Release) -> str:
        """In `release`: "exposed" by default, "hidden" (only with --show-hidden-metrics-for-version) or "absent"."""
        if release < self.since or (self.removed_in is not None and release >= self.removed_in):
            return "absent"
        return "hidden" if self.hidden_from is not None and release >= self.hidden_from else "exposed"

    def exposed_by_default(self, release: Release) -> bool:
        return self.state(release) == "exposed"

    def series(self) -> tuple[str, ...]:
        return tuple(self.name + s for s in HISTOGRAM_SUFFIXES) if self.kind == Kind.HISTOGRAM else (self.name,)


# Per signal, newest name first: the order in which to try them.
NAMES: dict[Signal, tuple[MetricName, ...]] = {
    Signal.TTFT: (MetricName("vllm:time_to_first_token_seconds", Kind.HISTOGRAM),),
    Signal.ITL: (
        MetricName("vllm:inter_token_latency_seconds", Kind.HISTOGRAM, since=(0, 10, 2)),
        MetricName("vllm:time_per_output_token_seconds", Kind.HISTOGRAM, hidden_from=(0, 12, 0), removed_in=(0, 15, 0)),
    ),
    Signal.E2E_LATENCY: (MetricName("vllm:e2e_request_latency_seconds", Kind.HISTOGRAM),),
    Signal.KV_CACHE_USAGE: (
        MetricName("vllm:kv_cache_usage_perc", Kind.GAUGE, since=(0, 9, 2)),
        MetricName("vllm:gpu_cache_usage_perc", Kind.GAUGE, hidden_from=(0, 11, 0), removed_in=(0, 12, 0)),
    ),
    Signal.REQUESTS_RUNNING: (MetricName("vllm:num_requests_running", Kind.GAUGE),),
    Signal.REQUESTS_WAITING: (MetricName("vllm:num_requests_waiting", Kind.GAUGE),),
    Signal.PROMPT_TOKENS: (MetricName("vllm:request_prompt_tokens", Kind.HISTOGRAM),),
    Signal.GENERATION_TOKENS: (MetricName("vllm:request_generation_tokens", Kind.HISTOGRAM),),
    Signal.PREFILL_TIME: (MetricName("vllm:request_prefill_time_seconds", Kind.HISTOGRAM),),
}


def names_for(signal: Signal, version: str) -> tuple[MetricName, ...]:
    """The names `version` exposes `signal` under with default flags, newest first (two during a rename's overlap,
    e.g. 0.11 exposes both ITL names; query the first, fall back to the next)."""
    release = parse_release(version)
    return tuple(n for n in NAMES[signal] if n.exposed_by_default(release))


def metric_names(version: str) -> dict[Signal, tuple[str, ...]]:
    """Every signal's names for a release, newest first."""
    return {signal: tuple(n.name for n in names_for(signal, version)) for signal in Signal}
