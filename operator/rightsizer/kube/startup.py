"""Measured cold start (status.startup): how long a pool's replicas take from pod creation to Ready, which the
autoscaler uses as its scale-up lead time (scaling.status.behavior_of) instead of a fixed minute.

Level-based, from the pods alone: every pod Ready now is measured from its `creationTimestamp` to its Ready
condition's `lastTransitionTime` (image pull, scheduling, weight download and load, CUDA graphs: what a new
replica costs). A pool with no Ready pod now keeps the figures status already shows, so a scale-down to zero does
not forget what the last start-up cost. Pure."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.llmdeployment import PoolStartup, StartupStatus
from rightsizer.kube.progress import waited_seconds

JSON = Mapping[str, Any]


def startup_seconds(pod: JSON) -> float | None:
    """Creation to Ready for a pod Ready now; None for one that is not, or whose times do not parse."""
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = next((x for x in conditions if x.get("type") == "Ready" and x.get("status") == "True"), None)
    if not created or ready is None or not ready.get("lastTransitionTime"):
        return None
    try:
        seconds = waited_seconds(str(created), str(ready["lastTransitionTime"]))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile: a start-up that happened, not an interpolation between two."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def startup_status(pods: Sequence[JSON], previous: JSON | None, pools: Collection[str]) -> StartupStatus | None:
    """Per pool (the pods' rightsizer.dev/pool label) p50 and p95 over the pods Ready now; pools without one keep
    `previous` (status.startup as written), but only pools the operator knows (`pools`): a status edited by hand
    cannot make it carry any number of made-up entries. None while nothing was ever measured."""
    by_pool: dict[str, list[float]] = {}
    for pod in pods:
        pool = ((pod.get("metadata") or {}).get("labels") or {}).get(c.LABEL_POOL)
        seconds = startup_seconds(pod)
        if pool and seconds is not None:
            by_pool.setdefault(str(pool), []).append(seconds)
    entries = {
        pool: PoolStartup(
            pool=pool,
            p50_seconds=round(_quantile(sorted(values), 0.5), 1),
            p95_seconds=round(_quantile(sorted(values), 0.95), 1),
            samples=len(values),
        )
        for pool, values in by_pool.items()
    }
    for kept in (previous or {}).get("pools") or []:
        try:
            entry = PoolStartup.model_validate(kept)
        except ValueError:
            continue  # an edited status: measure afresh
        if entry.pool in pools:
            entries.setdefault(entry.pool, entry)
    return StartupStatus(pools=[entries[p] for p in sorted(entries)]) if entries else None


def lead_time_seconds(startup: StartupStatus | None, pool: str) -> float | None:
    """The measured p95 start-up on `pool`, if any."""
    for entry in startup.pools if startup else []:
        if entry.pool == pool:
            return entry.p95_seconds
    return None
