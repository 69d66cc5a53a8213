"""The simulator's /metrics: the series vLLM serves, registered the way vLLM registers them.

Names, types, label names (`model_name`, `engine`) and histogram buckets are vLLM 0.19.0's
(vllm/v1/metrics/loggers.py, `PrometheusStatLogger.__init__`); tests/contract/test_vllm_sim_contract.py checks every
series against the pinned release's wheel. The names of renamed signals (ITL, KV-cache usage) follow
rightsizer.facts.vllm_metrics for the release the simulator impersonates, so an older release can be simulated too.
vLLM serves its metrics through prometheus_client's multiprocess collector, which exports no `_created` series;
neither does the simulator.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from rightsizer.facts.vllm_metrics import Signal, names_for

LABELS = ["model_name", "engine"]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0]
TTFT_BUCKETS += [80.0, 160.0, 640.0, 2560.0]
ITL_BUCKETS = [
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
]
REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0]
REQUEST_LATENCY_BUCKETS += [240.0, 480.0, 960.0, 1920.0, 7680.0]
ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")  # vllm/v1/engine FinishReason, str()


def build_1_2_5_buckets(max_value: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, … up to max_value (vllm/v1/metrics/loggers.py `build_1_2_5_buckets`)."""
    buckets, exponent = [], 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return buckets
            buckets.append(value)
        exponent += 1


class VllmMetrics:
    """One engine's series (engine="0") in a registry of its own."""

    def __init__(self, model_name: str, max_model_len: int, version: str) -> None:
        disable_created_metrics()
        self.registry = CollectorRegistry()
        r, labels = self.registry, (model_name, "0")
        lengths = build_1_2_5_buckets(max_model_len)

        def name(signal: Signal) -> str:
            return names_for(signal, version)[0].name

        def gauge(metric: str, doc: str) -> Gauge:
            return Gauge(metric, doc, LABELS, registry=r, multiprocess_mode="mostrecent").labels(*labels)

        def counter(metric: str, doc: str) -> Counter:
            return Counter(metric, doc, LABELS, registry=r).labels(*labels)

        def histogram(metric: str, doc: str, buckets: list[float] | list[int]) -> Histogram:
            return Histogram(metric, doc, LABELS, registry=r, buckets=buckets).labels(*labels)

        self.running = gauge(name(Signal.REQUESTS_RUNNING), "Number of requests in model execution batches.")
        self.waiting = gauge(name(Signal.REQUESTS_WAITING), "Number of requests waiting to be processed.")
        self.kv_usage = gauge(name(Signal.KV_CACHE_USAGE), "KV-cache usage. 1 means 100 percent usage.")
        self.preemptions = counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*LABELS, "finished_reason"],
            registry=r,
        )
        self.success = {reason: success.labels(*labels, reason) for reason in FINISHED_REASONS}
        self.request_prompt_tokens = histogram(
            name(Signal.PROMPT_TOKENS), "Number of prefill tokens processed.", lengths
        )
        self.request_generation_tokens = histogram(
            name(Signal.GENERATION_TOKENS), "Number of generation tokens processed.", lengths
        )
        self.iteration_tokens = histogram(
            "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION_TOKEN_BUCKETS
        )
        self.max_tokens = histogram(
            "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", lengths
        )
        self.ttft = histogram(name(Signal.TTFT), "Histogram of time to first token in seconds.", TTFT_BUCKETS)
        self.itl = histogram(name(Signal.ITL), "Histogram of inter-token latency in seconds.", ITL_BUCKETS)
        self.tpot = histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            ITL_BUCKETS,
        )
        self.e2e = histogram(
            name(Signal.E2E_LATENCY), "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.inference_time = histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.prefill_time = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.decode_time = histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
