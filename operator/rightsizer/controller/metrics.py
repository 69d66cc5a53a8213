"""The operator's own Prometheus metrics (served on RIGHTSIZER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("rightsizer_reconciles_total", "Reconciles of LLMDeployments", ["result"])
RECONCILES_COALESCED = Counter(
    "rightsizer_reconciles_coalesced_total",
    "Events that found their LLMDeployment already due in the work queue (no reconcile of their own)",
)
RECONCILE_QUEUE_DEPTH = Gauge("rightsizer_reconcile_queue_depth", "LLMDeployments waiting for a reconcile worker")
RECONCILE_SECONDS = Histogram(
    "rightsizer_reconcile_duration_seconds",
    "Time one reconcile takes",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PLANS = Counter("rightsizer_plan_changes_total", "Plans that changed (new sizing decisions)", ["gpu_product"])
SIZING_FAILURES = Counter("rightsizer_sizing_failures_total", "Reconciles that could not size the spec", ["reason"])
SCALING_DECISIONS = Counter("rightsizer_scaling_decisions_total", "Autoscaler changes of replicas", ["direction"])
SCALING_RECOMMENDATIONS = Counter(
    "rightsizer_scaling_recommendations_total",
    "Changed recommendations of the autoscaler in Recommend mode (spec.autoscaling.mode), not applied",
    ["direction"],
)
RESIZES = Counter(
    "rightsizer_resizes_total",
    "Plans re-sized with a deployment's measured speed (spec.autoscaling.applyRecommendations)",
)
PREDICTION_ERROR = Gauge(
    "rightsizer_prediction_error_ratio",
    "Observed over predicted mean latency at the observed load, last metrics window (the uncorrected model)",
    ["namespace", "name", "metric"],
)
# Cost per deployment (status.cost, kube/cost.py); set and removed with the deployment by controller/series.py.
GPUS = Gauge("rightsizer_gpus", "GPUs held by the deployment's pods", ["namespace", "name", "gpu_product"])
COST_PER_HOUR = Gauge(
    "rightsizer_cost_per_hour", "Price per hour of the GPUs the deployment holds (status.cost)", ["namespace", "name"]
)
COST_PER_MILLION_TOKENS = Gauge(
    "rightsizer_cost_per_million_tokens",
    "Price per million output tokens at the observed load (absent without a metrics window)",
    ["namespace", "name"],
)
# Per deployment, what a dashboard draws (charts/rightsizer/dashboards): the replicas from the status the reconciler
# writes, the last metrics window and the autoscaler's reading of it; removed with the deployment
# (controller/series.py).
REPLICAS = Gauge(
    "rightsizer_replicas",
    "Replicas of the deployment: desired (status.replicas) and ready (status.readyReplicas)",
    ["namespace", "name", "state"],
)
POOL_REPLICAS = Gauge(
    "rightsizer_pool_replicas",
    "Replicas each pool is asked for and has ready (status.placement.pools)",
    ["namespace", "name", "pool", "role", "state"],
)
LATENCY_P95 = Gauge(
    "rightsizer_latency_p95_seconds",
    "p95 latency by source: the SLO target, what the last metrics window observed, and what the calibrated model "
    "predicts at that window's load",
    ["namespace", "name", "metric", "source"],
)
REQUEST_RATE = Gauge("rightsizer_request_rate", "Arrivals per second, last metrics window", ["namespace", "name"])
CAPACITY = Gauge(
    "rightsizer_capacity_requests_per_second",
    "Arrivals per second the replicas in force serve within the SLO (the calibrated model), last metrics window",
    ["namespace", "name"],
)
REQUESTS_WAITING = Gauge(
    "rightsizer_requests_waiting", "vLLM's waiting queue over the replicas, last metrics window", ["namespace", "name"]
)
KV_CACHE_USAGE = Gauge(
    "rightsizer_kv_cache_usage_ratio",
    "vLLM's KV-cache use averaged over the replicas, last metrics window",
    ["namespace", "name"],
)
SCALING_EVENTS = Counter(
    "rightsizer_scaling_events_total",
    "Replica changes the autoscaler wrote, by direction and the kind of reason (capacity, queue, latency, other)",
    ["namespace", "name", "direction", "cause"],
)
