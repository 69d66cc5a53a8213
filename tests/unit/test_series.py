"""The per-deployment series a dashboard draws (controller.series): set from status and the autoscaler's window,
with bounded labels, and gone with the deployment."""

from __future__ import annotations

from prometheus_client import REGISTRY

from rightsizer.controller import series


def value(metric: str, /, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def status(pools: list[tuple[str, str, int, int]], replicas: int = 3, ready: int = 2) -> dict[str, object]:
    entries = [{"pool": p, "role": r, "workload": "w", "replicas": n, "readyReplicas": k} for p, r, n, k in pools]
    return {"replicas": replicas, "readyReplicas": ready, "placement": {"summary": "", "pools": entries}}


def test_replicas_per_pool_follow_the_placement_and_a_pool_left_behind_is_removed() -> None:
    series.publish_status("ns", "chat", status([("h200", "primary", 3, 1), ("h100", "overflow", 1, 1)]))
    assert value("rightsizer_replicas", namespace="ns", name="chat", state="desired") == 3
    assert value("rightsizer_replicas", namespace="ns", name="chat", state="ready") == 2
    overflow = {"namespace": "ns", "name": "chat", "pool": "h100", "role": "overflow"}
    assert value("rightsizer_pool_replicas", **overflow, state="asked") == 1
    series.publish_status("ns", "chat", status([("h200", "primary", 3, 3)], ready=3))
    assert value("rightsizer_pool_replicas", **overflow, state="asked") is None  # back on the primary only
    primary = {"namespace": "ns", "name": "chat", "pool": "h200", "role": "primary"}
    assert value("rightsizer_pool_replicas", **primary, state="ready") == 3
    series.forget("ns", "chat")
    assert value("rightsizer_replicas", namespace="ns", name="chat", state="desired") is None
    assert value("rightsizer_pool_replicas", **primary, state="ready") is None


def test_an_unknown_figure_removes_its_series_instead_of_leaving_a_stale_one() -> None:
    view = series.WindowView(
        ttft={"target": 2.0, "observed": 0.8, "predicted": 0.7},
        itl={"target": 0.1, "observed": None, "predicted": 0.03},
        request_rate=1.2,
        capacity_rps=1.4,
        waiting=0.0,
        kv_usage=0.4,
    )
    series.publish_window("ns", "w", view)
    ttft = {"namespace": "ns", "name": "w", "metric": "ttft"}
    assert value("rightsizer_latency_p95_seconds", **ttft, source="observed") == 0.8
    assert value("rightsizer_latency_p95_seconds", namespace="ns", name="w", metric="itl", source="observed") is None
    series.publish_window("ns", "w", view.__class__(**{**view.__dict__, "ttft": {**view.ttft, "observed": None}}))
    assert value("rightsizer_latency_p95_seconds", **ttft, source="observed") is None
    assert value("rightsizer_latency_p95_seconds", **ttft, source="target") == 2.0
    series.forget_window("ns", "w")
    assert value("rightsizer_latency_p95_seconds", **ttft, source="target") is None
    assert value("rightsizer_request_rate", namespace="ns", name="w") is None


def test_scaling_events_carry_the_kind_of_reason_only() -> None:
    assert series.cause_of("capacity: 3.12 req/s over 1.50 req/s per replica within SLO") == "capacity"
    assert series.cause_of("recommendation only: queue: 4 waiting, growing 0.20 req/s") == "queue"
    assert series.cause_of("held at the minimum; bounded to 1..4") == "other"  # never free text as a label
    series.count_scaling("ns", "e", "up", "latency: observed p95 at 1.30× the target")
    labels = {"namespace": "ns", "name": "e", "direction": "up", "cause": "latency"}
    assert value("rightsizer_scaling_events_total", **labels) == 1
    series.prune([("ns", "other")])
    assert value("rightsizer_scaling_events_total", **labels) is None


def test_cost_series_follow_status_cost_and_a_product_left_behind_is_removed() -> None:
    from rightsizer.api.v1alpha1.cost import CostStatus

    def cost(gpus: dict[str, int], per_million: float | None) -> CostStatus:
        return CostStatus.model_validate(
            {
                "gpus": [{"product": p, "gpus": n} for p, n in gpus.items()],
                "pricePerHour": 7.0,
                "priceSource": "declared",
                "gpuHoursLastDay": 0.0,
                "coveredHours": 0.0,
                "peakGpusLastDay": 0,
                "savedGpuHoursLastDay": 0.0,
                "dollarsPerMillionTokens": per_million,
                "dayAsOf": "2026-12-06T00:00:00Z",
            }
        )

    one = {"namespace": "ns", "name": "c"}
    series.publish_cost("ns", "c", cost({"NVIDIA-H200": 2, "NVIDIA-H100-80GB-HBM3": 2}, 1.5))
    assert value("rightsizer_gpus", **one, gpu_product="NVIDIA-H100-80GB-HBM3") == 2
    assert value("rightsizer_cost_per_million_tokens", **one) == 1.5
    series.publish_cost("ns", "c", cost({"NVIDIA-H200": 2}, None))  # back on one pool, no metrics window
    assert value("rightsizer_gpus", **one, gpu_product="NVIDIA-H100-80GB-HBM3") is None
    assert value("rightsizer_gpus", **one, gpu_product="NVIDIA-H200") == 2
    assert value("rightsizer_cost_per_million_tokens", **one) is None
    series.prune([])
    assert value("rightsizer_cost_per_hour", **one) is None
