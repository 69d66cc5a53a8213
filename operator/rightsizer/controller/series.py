"""The per-deployment series a dashboard draws (charts/rightsizer/dashboards/rightsizer.json): replicas per pool from
the status the reconciler writes, and the autoscaler's last window (latency p95 observed, predicted and targeted,
arrivals, capacity, queue, KV cache, its replica changes). Every series of a deployment is removed when it is gone,
so none outlives it; the label values are bounded (a pool, a role, a metric, a source, a cause from a fixed set)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from rightsizer.controller import metrics

CAUSES = ("capacity", "queue", "latency")  # decide()'s reasons: "<cause>: <figures>"

_lock = threading.Lock()
# Every label tuple set per deployment and metric, so forget() removes exactly those.
_labels: dict[tuple[str, str], set[tuple[Gauge | Counter, tuple[str, ...]]]] = {}


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
        with contextlib.suppress(KeyError):
            gauge.remove(*key, *labels)
        _labels.get(key, set()).discard((gauge, labels))
        return
    gauge.labels(*key, *labels).set(value)
    _labels.setdefault(key, set()).add((gauge, labels))


def publish_status(namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Replicas from the status the reconciler computed: desired and ready, and each pool's asked and ready."""
    key = (namespace, name)
    pools = (status.get("placement") or {}).get("pools") or []
    with _lock:
        stale = {
            (g, labels) for g, labels in _labels.get(key, set()) if g is metrics.POOL_REPLICAS
        }  # pools no longer in the placement go
        for gauge, labels in stale:
            with contextlib.suppress(KeyError):
                gauge.remove(*key, *labels)
            _labels[key].discard((gauge, labels))
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


def count_scaling(namespace: str, name: str, direction: str, reason: str) -> None:
    labels = (direction, cause_of(reason))
    with _lock:
        metrics.SCALING_EVENTS.labels(namespace, name, *labels).inc()
        _labels.setdefault((namespace, name), set()).add((metrics.SCALING_EVENTS, labels))


def forget_window(namespace: str, name: str) -> None:
    """The autoscaler stopped reading this deployment (switched off, or a peer acts): its window's series go."""
    window_gauges = (
        metrics.LATENCY_P95,
        metrics.REQUEST_RATE,
        metrics.CAPACITY,
        metrics.REQUESTS_WAITING,
        metrics.KV_CACHE_USAGE,
    )
    _remove((namespace, name), lambda g: g in window_gauges)


def forget(namespace: str, name: str) -> None:
    _remove((namespace, name), lambda g: True)


def prune(live: Iterable[tuple[str, str]]) -> None:
    """Forget every deployment not in `live` (called by the resync with every live deployment)."""
    keep = set(live)
    with _lock:
        known = list(_labels)
    for key in known:
        if key not in keep:
            forget(*key)


def _remove(key: tuple[str, str], which: Any) -> None:
    with _lock:
        for gauge, labels in list(_labels.get(key, set())):
            if which(gauge):
                with contextlib.suppress(KeyError):
                    gauge.remove(*key, *labels)
                _labels[key].discard((gauge, labels))
        if key in _labels and not _labels[key]:
            del _labels[key]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
