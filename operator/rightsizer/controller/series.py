"""The operator's per-deployment series (what charts/rightsizer/dashboards/rightsizer.json draws): replicas per pool
and cost from the status the reconciler writes, and the autoscaler's last window (latency p95 observed, predicted
and targeted, arrivals, capacity, queue, KV cache, its replica changes). One tracker holds every label set it has
set per deployment, so a series no longer true is removed, and every series of a deployment goes when it is gone;
the label values are bounded (a pool, a role, a product, a metric, a source, a cause from a fixed set)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from rightsizer.api.v1alpha1.cost import CostStatus
from rightsizer.controller import metrics

Series = tuple[Gauge | Counter, tuple[str, ...]]  # a metric and its label values after namespace and name

CAUSES = ("capacity", "queue", "latency")  # decide()'s reasons: "<cause>: <figures>"

_lock = threading.Lock()
# Every label tuple set per deployment and metric, so forget() removes exactly those.
_labels: dict[tuple[str, str], set[Series]] = {}


@dataclass(frozen=True)
class WindowView:
    """What the autoscaler read and predicted over one window (None: not known this window)."""

    ttft: Mapping[str, float | None]  # by source: target, observed, predicted (seconds)
    itl: Mapping[str, float | None]
    request_rate: float | None
    capacity_rps: float | None
    waiting: float
    kv_usage: float | None


def cause_of(reason: str) -> str:
    """The bounded kind of an autoscaler reason ("capacity: 3.1 req/s over …" -> capacity)."""
    head = reason.removeprefix("recommendation only: ").split(":", 1)[0].strip()
    return head if head in CAUSES else "other"


def _set(key: tuple[str, str], gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """Set the series, or remove it when the value is unknown (a stale figure on a dashboard misleads)."""
    if value is None:
        _drop(key, lambda g, other: g is gauge and other == labels)
        return
    gauge.labels(*key, *labels).set(value)
    _labels.setdefault(key, set()).add((gauge, labels))


def publish_status(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Replicas from the status the reconciler computed: desired and ready, and each pool's asked and ready."""
    key = (namespace, name)
    pools = (status.get("placement") or {}).get("pools") or []
    asked = {(str(e.get("pool")), str(e.get("role"))) for e in pools}
    with _lock:
        _drop(key, lambda g, labels: g is metrics.POOL_REPLICAS and labels[:2] not in asked)  # pools left behind
        _set(key, metrics.REPLICAS, ("desired",), _number(status.get("replicas")))
        _set(key, metrics.REPLICAS, ("ready",), _number(status.get("readyReplicas")) or 0.0)
        for entry in pools:
            pool, role = str(entry.get("pool")), str(entry.get("role"))
            _set(key, metrics.POOL_REPLICAS, (pool, role, "asked"), _number(entry.get("replicas")))
            _set(key, metrics.POOL_REPLICAS, (pool, role, "ready"), _number(entry.get("readyReplicas")) or 0.0)


def publish_window(namespace: str, name: str, view: WindowView) -> None:
    key = (namespace, name)
    with _lock:
        for metric, by_source in (("ttft", view.ttft), ("itl", view.itl)):
            for source, value in by_source.items():
                _set(key, metrics.LATENCY_P95, (metric, source), value)
        _set(key, metrics.REQUEST_RATE, (), view.request_rate)
        _set(key, metrics.CAPACITY, (), view.capacity_rps)
        _set(key, metrics.REQUESTS_WAITING, (), view.waiting)
        _set(key, metrics.KV_CACHE_USAGE, (), view.kv_usage)


def publish_cost(namespace: str, name: str, cost: CostStatus) -> None:
    """GPUs per product, price per hour and $ per million output tokens (status.cost, kube/cost.py)."""
    key = (namespace, name)
    products = {(g.product,) for g in cost.gpus}
    with _lock:
        _drop(key, lambda g, labels: g is metrics.GPUS and labels not in products)
        for g in cost.gpus:
            _set(key, metrics.GPUS, (g.product,), g.gpus)
        _set(key, metrics.COST_PER_HOUR, (), cost.price_per_hour)
        _set(key, metrics.COST_PER_MILLION_TOKENS, (), cost.dollars_per_million_tokens)


def count_scaling(namespace: str, name: str, direction: str, reason: str) -> None:
    labels = (direction, cause_of(reason))
    with _lock:
        metrics.SCALING_EVENTS.labels(namespace, name, *labels).inc()
        _labels.setdefault((namespace, name), set()).add((metrics.SCALING_EVENTS, labels))


def forget_window(namespace: str, name: str) -> None:
    """The autoscaler stopped reading this deployment (switched off, or a peer acts): its window's series go."""
    window = {
        metrics.LATENCY_P95,
        metrics.REQUEST_RATE,
        metrics.CAPACITY,
        metrics.REQUESTS_WAITING,
        metrics.KV_CACHE_USAGE,
    }
    with _lock:
        _drop((namespace, name), lambda g, _: g in window)


def forget(namespace: str, name: str) -> None:
    with _lock:
        _drop((namespace, name), lambda g, _: True)


def prune(live: Iterable[tuple[str, str]]) -> None:
    """Forget every deployment not in `live` (called by the resync with every live deployment)."""
    keep = set(live)
    with _lock:
        for key in [k for k in _labels if k not in keep]:
            _drop(key, lambda g, _: True)


def _drop(key: tuple[str, str], which: Callable[[Gauge | Counter, tuple[str, ...]], bool]) -> None:
    """Remove the deployment's series that `which` picks (the lock held)."""
    for metric, labels in [x for x in _labels.get(key, set()) if which(*x)]:
        with contextlib.suppress(KeyError):
            metric.remove(*key, *labels)
        _labels[key].discard((metric, labels))
    if key in _labels and not _labels[key]:
        del _labels[key]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
