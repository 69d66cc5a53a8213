"""vLLM's /metrics text -> per-pod samples -> a deployment's window, and the PromQL that computes the same."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from e2e.vllm_sim.metrics import VllmMetrics
from rightsizer.facts.vllm_metrics import Signal
from rightsizer.scaling.histograms import Histogram
from rightsizer.scaling.promql import Selector, queries, scalar, stats
from rightsizer.scaling.window import PodSample, parse_sample, window_stats

INF = math.inf


def exposition(version: str, ttft: list[float], itl: list[float], waiting: int = 0, running: int = 0) -> str:
    """What a vLLM of `version` serves after these observations (the simulator registers vLLM's own series)."""
    m = VllmMetrics("m", 4096, version)
    for value in ttft:
        m.ttft.observe(value)
        m.request_prompt_tokens.observe(1000)
        m.request_generation_tokens.observe(200)
    for value in itl:
        m.itl.observe(value)
    m.waiting.set(waiting)
    m.running.set(running)
    m.kv_usage.set(0.25)
    return generate_latest(m.registry).decode()


@pytest.mark.parametrize(
    ("version", "itl_name", "kv_name"),
    [
        ("0.19.0", "vllm:inter_token_latency_seconds", "vllm:kv_cache_usage_perc"),
        ("0.11.0", "vllm:inter_token_latency_seconds", "vllm:kv_cache_usage_perc"),
        ("0.10.0", "vllm:time_per_output_token_seconds", "vllm:kv_cache_usage_perc"),
        ("0.9.1", "vllm:time_per_output_token_seconds", "vllm:gpu_cache_usage_perc"),
    ],
)
def test_a_scrape_is_read_under_the_names_of_its_release(version: str, itl_name: str, kv_name: str) -> None:
    text = exposition(version, ttft=[0.05, 0.3], itl=[0.02, 0.02, 0.2], waiting=3, running=5)
    assert f"{itl_name}_bucket{{" in text and f"{kv_name}{{" in text
    sample = parse_sample(text, 10.0, version)
    assert sample.time == 10.0
    assert sample.histograms[Signal.TTFT].count == 2
    assert sample.histograms[Signal.ITL].count == 3
    assert sample.histograms[Signal.ITL].sum == pytest.approx(0.24)
    assert dict(sample.gauges) == {
        Signal.REQUESTS_WAITING: 3.0,
        Signal.REQUESTS_RUNNING: 5.0,
        Signal.KV_CACHE_USAGE: 0.25,
    }


def test_engines_of_one_pod_are_summed() -> None:
    text = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_running{engine="1",model_name="m"} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.4
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 2.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 2.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.5
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="m"} 3.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 0.2
"""
    sample = parse_sample(text, 0.0, "0.19.0")
    assert sample.gauges[Signal.REQUESTS_RUNNING] == 5.0
    assert sample.gauges[Signal.KV_CACHE_USAGE] == pytest.approx(0.3)  # usage is a share: averaged
    assert sample.histograms[Signal.TTFT] == Histogram(((0.1, 4.0), (INF, 5.0)), 0.7, 5.0)


def ttft(count: float, fast: float) -> Histogram:
    """`count` TTFT observations, `fast` of them within 0.1 s, the rest within 1 s."""
    return Histogram(((0.1, fast), (1.0, count), (INF, count)), 0.0, count)


def sample(t: float, count: float, fast: float, waiting: float = 0.0, running: float = 0.0) -> PodSample:
    lengths = Histogram(((1000.0, count), (INF, count)), 500.0 * count, count)
    outputs = Histogram(((1000.0, count), (INF, count)), 100.0 * count, count)
    return PodSample(
        t,
        {Signal.TTFT: ttft(count, fast), Signal.PROMPT_TOKENS: lengths, Signal.GENERATION_TOKENS: outputs},
        {Signal.REQUESTS_WAITING: waiting, Signal.REQUESTS_RUNNING: running, Signal.KV_CACHE_USAGE: running / 10},
    )


def test_window_stats_over_two_pods() -> None:
    pods = {
        # before the window (ignored), then 20 first tokens in 10 s, 10 fast, and the queue grows from 0 to 5
        "a": [sample(0.0, 0, 0), sample(20.0, 100, 50), sample(25.0, 110, 55), sample(30.0, 120, 60, 5, 4)],
        # 10 first tokens in 10 s, all fast
        "b": [sample(20.0, 40, 40), sample(30.0, 50, 50, 0, 2)],
    }
    w = window_stats(pods, now=30.0, window=10.0)
    assert w.pods == 2
    assert w.request_rate == pytest.approx((20 + 5) / 10 + 10 / 10)
    # 30 observations: 20 within 0.1 s, 10 in (0.1, 1]; rank 28.5 -> 0.1 + 0.9 × 8.5/10
    assert w.ttft_p95_s == pytest.approx(0.865)
    assert w.itl_p95_s is None  # no ITL series at all
    assert (w.waiting, w.running) == (5.0, 6.0)
    assert w.kv_usage == pytest.approx(0.3)
    assert w.mean_prompt_tokens == pytest.approx(500.0)
    assert w.mean_generation_tokens == pytest.approx(100.0)
    assert w.finished == 30


def test_a_pod_that_died_in_the_window_still_counts_what_it_served() -> None:
    pods = {
        "alive": [sample(0.0, 0, 0, running=4), sample(10.0, 10, 10, running=4)],
        # served 10 requests in the first half of the window, then died; its queue of 3 went with it
        "dead": [sample(0.0, 0, 0, waiting=3), sample(5.0, 10, 10, waiting=3)],
    }
    w = window_stats(pods, now=10.0, window=10.0, live={"alive"})
    assert w.request_rate == pytest.approx((10 + 10) / 10)  # not 10/10 + 10/5: it lived half the window
    assert w.finished == 20
    assert (w.pods, w.waiting, w.running) == (1, 0.0, 4.0)  # gauges only from the living


def test_a_pod_scraped_once_reports_its_gauges_but_no_rate() -> None:
    w = window_stats({"new": [sample(30.0, 7, 7, waiting=2)]}, now=30.0, window=10.0)
    assert (w.pods, w.request_rate, w.ttft_p95_s, w.waiting) == (1, None, None, 2.0)
    assert window_stats({}, now=30.0, window=10.0).pods == 0


def test_no_rate_until_the_samples_span_most_of_the_window() -> None:
    # Scraping began 2 s ago (autoscaling just switched on): 3 first tokens in 2 s is not a rate of 1.5 req/s.
    young = {"a": [sample(28.0, 0, 0), sample(30.0, 3, 3)]}
    assert window_stats(young, now=30.0, window=15.0).request_rate is None
    grown = {"a": [sample(18.0, 0, 0), sample(30.0, 12, 12)]}  # 12 s of a 15 s window: enough (MIN_COVERAGE)
    assert window_stats(grown, now=30.0, window=15.0).request_rate == pytest.approx(1.0)


def test_queue_shrinking_faster_than_arrivals_never_gives_a_negative_rate() -> None:
    w = window_stats({"a": [sample(0.0, 0, 0, waiting=50), sample(10.0, 10, 10, waiting=0)]}, now=10.0, window=10.0)
    assert w.request_rate == 0.0


# --- PromQL ----------------------------------------------------------------------------------------------------------


def test_queries_select_the_pods_by_namespace_and_name() -> None:
    q = queries(Selector("team-a", ("chat-7d9f-x2", "chat.v2-1")), "0.19.0", 30)
    s = 'namespace="team-a",pod=~"chat-7d9f-x2|chat\\\\.v2-1"'
    assert q["ttft_p95"] == (
        f"histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{s}}}[30s])))"
    )
    assert q["itl_p95"].startswith("histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_")
    assert q["admitted_rate"] == f"sum(rate(vllm:time_to_first_token_seconds_count{{{s}}}[30s]))"
    assert q["queue_growth"] == f"sum(deriv(vllm:num_requests_waiting{{{s}}}[30s]))"
    assert q["kv_usage"] == f"avg(vllm:kv_cache_usage_perc{{{s}}})"
    assert q["finished"] == f"sum(increase(vllm:request_generation_tokens_count{{{s}}}[30s]))"
    prompt = "vllm:request_prompt_tokens"
    assert q["mean_prompt"] == f"sum(rate({prompt}_sum{{{s}}}[30s])) / sum(rate({prompt}_count{{{s}}}[30s]))"


def test_queries_use_the_names_of_the_release_and_the_configured_labels() -> None:
    q = queries(Selector("ns", ("p",), namespace_label="kubernetes_namespace", pod_label="pod_name"), "0.9.1", 60)
    assert "vllm:time_per_output_token_seconds_bucket" in q["itl_p95"]
    assert 'kubernetes_namespace="ns",pod_name=~"p"' in q["waiting"]
    assert q["kv_usage"].startswith("avg(vllm:gpu_cache_usage_perc{")


def vector(*values: str) -> dict[str, object]:
    result = [{"metric": {}, "value": [1700000000.0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (vector("0.25"), 0.25),
        (vector(), None),  # no series
        (vector("NaN"), None),  # histogram_quantile over no observations
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}, 3.0),
    ],
)
def test_scalar_reads_one_number(answer: dict[str, object], expected: float | None) -> None:
    assert scalar(answer) == expected


def test_a_refused_query_raises() -> None:
    with pytest.raises(ValueError, match="bad_data"):
        scalar({"status": "error", "errorType": "bad_data", "error": "parse error"})


def test_stats_from_answers() -> None:
    w = stats({"admitted_rate": 2.0, "queue_growth": 0.5, "pods": 3, "ttft_p95": 0.4, "waiting": 7.0, "running": None})
    assert (w.request_rate, w.pods, w.ttft_p95_s, w.waiting, w.running) == (2.5, 3, 0.4, 7.0, 0.0)
    assert stats({"pods": 2}).request_rate is None  # nothing admitted yet: no basis for a rate
    assert stats({"admitted_rate": 0.1, "queue_growth": -1.0}).request_rate == 0.0
    assert stats({"finished": 12.0}).finished == 12.0
