"""The PromQL the Prometheus metrics source sends for one deployment, and how the answers become WindowStats. Pure.

The deployment's series are selected by the labels a Prometheus scrape attaches to every target: the pod's
namespace and name (kube-prometheus' PodMonitor and the usual kubernetes_sd relabeling name them `namespace` and
`pod`; both names are settings). The pods are the ones the operator's pod index holds for the deployment, so the
query needs no relabeling of rightsizer's own labels. Every query aggregates to one number:

    ttft_p95         histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{S}[W])))
    itl_p95          histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{S}[W])))
    admitted_rate    sum(rate(vllm:time_to_first_token_seconds_count{S}[W]))
    queue_growth     sum(deriv(vllm:num_requests_waiting{S}[W]))
    waiting          sum(vllm:num_requests_waiting{S})
    running          sum(vllm:num_requests_running{S})
    pods             count(vllm:num_requests_running{S})
    kv_usage         avg(vllm:kv_cache_usage_perc{S})
    mean_prompt      sum(rate(vllm:request_prompt_tokens_sum{S}[W])) / sum(rate(vllm:request_prompt_tokens_count{S}[W]))
    mean_generation  (the same over vllm:request_generation_tokens)
    finished         sum(increase(vllm:request_generation_tokens_count{S}[W]))
    ttft_mean        (mean_prompt's form over vllm:time_to_first_token_seconds: self-calibration's evidence)
    itl_mean         (the same over vllm:inter_token_latency_seconds)
    prefill_mean     (the same over vllm:request_prefill_time_seconds)

The metric names are the ones the deployment's vLLM release exposes (rightsizer.facts.vllm_metrics: e.g.
vllm:time_per_output_token_seconds for ITL before 0.11). Arrivals = admitted_rate + queue_growth, as in
rightsizer.scaling.window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rightsizer.facts.vllm_metrics import HISTOGRAM_BUCKET, HISTOGRAM_COUNT, HISTOGRAM_SUM, Signal, names_for
from rightsizer.scaling.window import QUANTILE, WindowStats


@dataclass(frozen=True)
class Selector:
    """The series of one deployment's pods."""

    namespace: str
    pods: tuple[str, ...]
    namespace_label: str = "namespace"
    pod_label: str = "pod"

    def render(self) -> str:
        # Pod names are DNS-1123 subdomains: only "." is special in a regular expression. In a PromQL string a
        # backslash is written twice.
        alternatives = "|".join(p.replace(".", "\\\\.") for p in sorted(self.pods))
        return f'{self.namespace_label}="{self.namespace}",{self.pod_label}=~"{alternatives}"'


def _name(signal: Signal, version: str) -> str:
    names = names_for(signal, version)
    if not names:
        raise ValueError(f"vLLM {version} exposes no metric for {signal}")
    return names[0].name


def queries(selector: Selector, version: str, window_seconds: float) -> dict[str, str]:
    """Named instant queries; see the module docstring."""
    s, w = selector.render(), f"{max(1, round(window_seconds))}s"
    ttft, itl = _name(Signal.TTFT, version), _name(Signal.ITL, version)
    waiting, running = _name(Signal.REQUESTS_WAITING, version), _name(Signal.REQUESTS_RUNNING, version)

    def p95(name: str) -> str:
        return f"histogram_quantile({QUANTILE}, sum by (le) (rate({name}{HISTOGRAM_BUCKET}{{{s}}}[{w}])))"

    def mean_of(name: str) -> str:
        return f"sum(rate({name}{HISTOGRAM_SUM}{{{s}}}[{w}])) / sum(rate({name}{HISTOGRAM_COUNT}{{{s}}}[{w}]))"

    return {
        "ttft_p95": p95(ttft),
        "itl_p95": p95(itl),
        "ttft_mean": mean_of(ttft),
        "itl_mean": mean_of(itl),
        "prefill_mean": mean_of(_name(Signal.PREFILL_TIME, version)),
        "admitted_rate": f"sum(rate({ttft}{HISTOGRAM_COUNT}{{{s}}}[{w}]))",
        "queue_growth": f"sum(deriv({waiting}{{{s}}}[{w}]))",
        "waiting": f"sum({waiting}{{{s}}})",
        "running": f"sum({running}{{{s}}})",
        "pods": f"count({running}{{{s}}})",
        "kv_usage": f"avg({_name(Signal.KV_CACHE_USAGE, version)}{{{s}}})",
        "mean_prompt": mean_of(_name(Signal.PROMPT_TOKENS, version)),
        "mean_generation": mean_of(_name(Signal.GENERATION_TOKENS, version)),
        "finished": f"sum(increase({_name(Signal.GENERATION_TOKENS, version)}{HISTOGRAM_COUNT}{{{s}}}[{w}]))",
    }


def scalar(response: Mapping[str, Any]) -> float | None:
    """The single value of an instant-query answer (/api/v1/query); None when empty or NaN (no observations)."""
    if response.get("status") != "success":
        raise ValueError(f"Prometheus query failed: {response.get('errorType')}: {response.get('error')}")
    data = response.get("data") or {}
    result: Sequence[Mapping[str, Any]] = data.get("result") or []
    if data.get("resultType") == "scalar":
        value = float(data["result"][1])
    elif not result:
        return None
    else:
        value = sum(float(r["value"][1]) for r in result)
    return None if math.isnan(value) or math.isinf(value) else value


def stats(values: Mapping[str, float | None]) -> WindowStats:
    """WindowStats from the answers to `queries` (None: no data)."""
    admitted = values.get("admitted_rate")
    rate = None if admitted is None else max(0.0, admitted + (values.get("queue_growth") or 0.0))
    return WindowStats(
        pods=int(values.get("pods") or 0),
        request_rate=rate,
        ttft_p95_s=values.get("ttft_p95"),
        itl_p95_s=values.get("itl_p95"),
        waiting=values.get("waiting") or 0.0,
        running=values.get("running") or 0.0,
        kv_usage=values.get("kv_usage"),
        mean_prompt_tokens=values.get("mean_prompt"),
        mean_generation_tokens=values.get("mean_generation"),
        finished=values.get("finished") or 0.0,
        ttft_mean_s=values.get("ttft_mean"),
        itl_mean_s=values.get("itl_mean"),
        prefill_mean_s=values.get("prefill_mean"),
    )
