"""GPU pools discovered from Node objects (GPU Feature Discovery labels), merged with declared pools. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rightsizer.api import constants as c
from rightsizer.api.v1alpha1.common import Toleration
from rightsizer.facts.gpus import UnknownGpuProductError, from_node_labels
from rightsizer.sizing.pools import GpuPool

JSON = Mapping[str, Any]


def _gpus(node: JSON) -> int:
    allocatable = node.get("status", {}).get("allocatable", {}) or {}
    try:
        return int(str(allocatable.get(c.GPU_RESOURCE, "0")))
    except ValueError:
        return 0


def _pool_key(labels: Mapping[str, str], pool_label_keys: Sequence[str]) -> tuple[str | None, str | None]:
    for key in pool_label_keys:
        if labels.get(key):
            return key, labels[key]
    return None, None


def _tolerations(node: JSON) -> tuple[Toleration, ...]:
    taints = node.get("spec", {}).get("taints", []) or []
    tolerations = []
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        operator = "Equal" if taint.get("value") else "Exists"
        tolerations.append(
            Toleration(key=taint.get("key"), operator=operator, value=taint.get("value"), effect=taint.get("effect"))
        )
    return tuple(sorted(tolerations, key=lambda t: (t.key or "", t.value or "", t.effect or "")))


def discover(nodes: Iterable[JSON], pool_label_keys: Sequence[str]) -> list[GpuPool]:
    """One pool per pool label value (or per GPU product for unlabelled nodes), from schedulable GPU nodes."""
    groups: dict[str, list[JSON]] = defaultdict(list)
    keys: dict[str, tuple[str | None, str | None, str]] = {}
    for node in nodes:
        labels = node.get("metadata", {}).get("labels", {}) or {}
        product = labels.get(c.GFD_PRODUCT)
        if not product or _gpus(node) == 0 or node.get("spec", {}).get("unschedulable"):
            continue
        label_key, label_value = _pool_key(labels, pool_label_keys)
        name = label_value or product.lower()
        groups[name].append(node)
        keys[name] = (label_key, label_value, product)
    pools = []
    for name, members in sorted(groups.items()):
        label_key, label_value, product = keys[name]
        memory = members[0]["metadata"]["labels"].get(c.GFD_MEMORY_MIB)
        try:
            gpu = from_node_labels(product, int(memory) if memory else None)
        except UnknownGpuProductError:
            continue
        selector = {label_key: label_value} if label_key and label_value else {c.GFD_PRODUCT: product}
        pools.append(
            GpuPool(
                name=name,
                gpu=gpu,
                gpus_per_node=max(_gpus(n) for n in members),
                max_nodes=len(members),
                node_selector=selector,
                tolerations=_tolerations(members[0]),
                discovered_nodes=len(members),
            )
        )
    return pools
