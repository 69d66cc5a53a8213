"""High availability: several operator processes share a kopf peering; only the highest-priority live peer acts.

kopf pauses its own handlers when a peer with a higher (or equal) priority is alive. rightsizer's background resync
is not a kopf handler, so it applies the same rule to the same peering object before each pass. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
CLUSTER_PEERING_KIND = "ClusterKopfPeering"
NAMESPACED_PEERING_KIND = "KopfPeering"  # kopf peers through one in each watched namespace when it watches namespaces


@dataclass(frozen=True)
class Peering:
    name: str
    priority: int
    identity: str
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide (ClusterKopfPeering); else a KopfPeering in each


def _alive(info: Mapping[str, Any], now: datetime) -> bool:
    lastseen = info.get("lastseen")
    if not lastseen:
        return True
    seen = datetime.fromisoformat(str(lastseen).replace("Z", "+00:00"))
    return seen + timedelta(seconds=int(info.get("lifetime", 60))) > now


def should_pause(peers: Mapping[str, Mapping[str, Any]], peering: Peering, now: datetime) -> bool:
    """kopf's rule (kopf/_core/engines/peering.py): pause while another live peer has a higher or the same priority."""
    for identity, info in peers.items():
        if identity == peering.identity or not _alive(info, now):
            continue
        if int(info.get("priority", 0)) >= peering.priority:
            return True
    return False
