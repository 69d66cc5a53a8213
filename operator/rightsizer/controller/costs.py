"""The cost metrics (rightsizer_gpus, rightsizer_cost_per_hour, rightsizer_cost_per_million_tokens) from status.cost:
set on each reconcile, removed when the deployment is gone, so no series outlives its deployment."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable

from rightsizer.api.v1alpha1.cost import CostStatus
from rightsizer.controller import metrics

_lock = threading.Lock()
_products: dict[tuple[str, str], set[str]] = {}  # the gpu_product series set per deployment


def publish(namespace: str, name: str, cost: CostStatus) -> None:
    key = (namespace, name)
    products = {g.product for g in cost.gpus}
    with _lock:
        for gone in _products.get(key, set()) - products:
            with contextlib.suppress(KeyError):
                metrics.GPUS.remove(namespace, name, gone)
        _products[key] = products
        for g in cost.gpus:
            metrics.GPUS.labels(namespace, name, g.product).set(g.gpus)
        metrics.COST_PER_HOUR.labels(namespace, name).set(cost.price_per_hour)
        if cost.dollars_per_million_tokens is None:
            with contextlib.suppress(KeyError):
                metrics.COST_PER_MILLION_TOKENS.remove(namespace, name)
        else:
            metrics.COST_PER_MILLION_TOKENS.labels(namespace, name).set(cost.dollars_per_million_tokens)


def forget(namespace: str, name: str) -> None:
    with _lock:
        for product in _products.pop((namespace, name), set()):
            with contextlib.suppress(KeyError):
                metrics.GPUS.remove(namespace, name, product)
        for gauge in (metrics.COST_PER_HOUR, metrics.COST_PER_MILLION_TOKENS):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)


def prune(live: Iterable[tuple[str, str]]) -> None:
    """Forget every deployment not in `live` (called by the resync with every live deployment)."""
    keep = set(live)
    with _lock:
        known = list(_products)
    for key in known:
        if key not in keep:
            forget(*key)
